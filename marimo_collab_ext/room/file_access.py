"""A room's notebook file: stat, read, and write as compare-and-swap.

Another program may write the file at any moment; a save must never replace a change the
session has not merged. `write(text, expected)` writes only while the file still holds
`expected` and otherwise hands back what it holds now, for the saver to merge and retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import stat
import tempfile
from dataclasses import dataclass

from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.filemanager import (
    AsyncFileContentsManager,
    FileContentsManager,
)
from jupyter_server.services.contents.largefilemanager import (
    AsyncLargeFileManager,
    LargeFileManager,
)
from tornado.web import HTTPError


class FileMissing(Exception):
    """Nothing at the path (deleted or moved)."""


class FileUnusable(Exception):
    """Something at the path that is not a readable text file (a directory, bad UTF-8...)."""


@dataclass(frozen=True)
class Changed:
    """A write refused because the file no longer holds what the session last saw."""

    text: str
    stamp: object


@dataclass(frozen=True)
class Displaced:
    """A write done, but over `text`, which another program wrote just before the rename:
    the file now holds the write (`stamp`), and `text` must still be merged."""

    text: str
    stamp: object


def open_file(contents, path: str) -> ContentsFile:
    """The file of API `path`: direct access for Jupyter's own file managers, else generic
    (a subclass that changes how files are read or saved is always asked through its API)."""
    kind = type(contents)
    if kind.get in _PLAIN_GET and kind.save in _PLAIN_SAVE:
        return LocalFile(contents, path, contents._get_os_path(path))
    return ContentsFile(contents, path)


_PLAIN_GET = {FileContentsManager.get, AsyncFileContentsManager.get}
# the large-file managers only add chunked uploads, which a room never sends
_PLAIN_SAVE = {FileContentsManager.save, AsyncFileContentsManager.save,
               LargeFileManager.save, AsyncLargeFileManager.save}


def local_identity(contents, path: str) -> tuple[str, tuple[int, int] | None] | None:
    """(real path, (device, inode)) of a local file; None for other contents managers.

    Every alias of one file (symlink, hard link, other letter case) shares the inode.
    Raises HTTPError for a path the contents manager refuses (outside its root).
    """
    if not isinstance(contents, (FileContentsManager, AsyncFileContentsManager)):
        return None
    real = os.path.realpath(contents._get_os_path(path))
    try:
        info = os.stat(real)
    except (OSError, ValueError):
        return real, None
    return real, (info.st_dev, info.st_ino)


class ContentsFile:
    """Any ContentsManager. Stamps are `last_modified`; the check before a write is a read,
    so a write landing between that read and the save is not seen (no API to do better)."""

    def __init__(self, contents, path: str) -> None:
        self.contents = contents
        self.path = path

    async def stamp(self) -> object:
        return (await self._get(content=False)).get("last_modified")

    async def read(self) -> tuple[str, object]:
        model = await self._get(content=True, type="file", format="text")
        return model["content"], model.get("last_modified")

    async def write(self, text: str, expected: str | None) -> object:
        """Write `text` if the file holds `expected` (None: if it is missing); the new stamp,
        or `Changed` with what the file holds instead, or `Displaced`."""
        try:
            current, stamp = await self.read()
        except FileMissing:
            if expected is not None:
                raise
        else:
            if current != expected:
                return Changed(current, stamp)
        model = await ensure_async(self.contents.save(
            {"type": "file", "format": "text", "content": text}, self.path))
        return model.get("last_modified")

    async def _get(self, **kwargs) -> dict:
        try:
            model = await ensure_async(self.contents.get(self.path, **kwargs))
        except HTTPError as exc:
            if exc.status_code == 404:
                raise FileMissing(self.path) from None
            raise FileUnusable(exc.log_message or exc.reason or str(exc)) from None
        if model.get("type") == "directory":
            raise FileUnusable(f"{self.path} is a directory, not a notebook file")
        return model


class LocalFile(ContentsFile):
    """A file of Jupyter's FileContentsManager, read and written directly.

    The new text goes to a temporary file beside it, then the file is read and compared and
    the temporary file renamed over it: microseconds apart, in one thread call, and readers
    never see half a file. A symlink is kept (its target is replaced) and so is the mode. A
    hard-linked file, another user's, or one in a directory we may not write is written in
    place instead, so the link, the owner and the inode stay. Jupyter's save hooks still run.
    """

    def __init__(self, contents, path: str, os_path: str) -> None:
        super().__init__(contents, path)
        self.os_path = os_path

    async def stamp(self) -> object:
        return await asyncio.to_thread(_stamp_of, self.os_path)

    async def read(self) -> tuple[str, object]:
        return await asyncio.to_thread(_read, self.os_path)

    async def write(self, text: str, expected: str | None) -> object:
        model = {"type": "file", "format": "text", "content": text}
        self.contents.run_pre_save_hooks(model=model, path=self.path)
        result = await asyncio.to_thread(
            _swap, self.os_path, None if expected is None else _encode(expected),
            _encode(model["content"]))
        if not isinstance(result, Changed | Displaced):
            saved = await ensure_async(self.contents.get(self.path, content=False))
            self.contents.run_post_save_hooks(model=saved, os_path=self.os_path)
        return result


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes, os_path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileUnusable(f"{os.path.basename(os_path)} is not UTF-8 text") from None


def _stamp(info: os.stat_result) -> tuple:
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise FileUnusable(f"it is {kind} now, not a notebook file")
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _stamp_of(os_path: str) -> tuple:
    try:
        return _stamp(os.stat(os_path))  # follows a symlink: the target's changes count
    except (FileNotFoundError, NotADirectoryError):
        raise FileMissing(os_path) from None


def _read(os_path: str) -> tuple[str, tuple]:
    try:
        fd = os.open(os_path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        raise FileMissing(os_path) from None
    with os.fdopen(fd, "rb") as file:
        stamp = _stamp(os.fstat(fd))
        return _decode(file.read(), os_path), stamp


def _swap(os_path: str, expected: bytes | None, data: bytes) -> object:
    """Write `data` if the file holds `expected` (None: only if there is no file)."""
    real = os.path.realpath(os_path)  # a symlink stays a symlink: its target is written
    try:
        info = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        if expected is not None:
            raise FileMissing(os_path) from None
        created = _create(real, data)
        if created is not None:
            return created
        info = os.stat(real)
    _stamp(info)
    if expected is None:  # the session thought it missing: what is there now is news
        return Changed(*_read(real))
    directory = os.path.dirname(real)
    if (info.st_nlink > 1 or info.st_uid != os.getuid()
            or not os.access(directory, os.W_OK)):
        return _swap_in_place(real, expected, data)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(real)}.",
                                suffix=".saving")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            os.fsync(fd)
            with open(real, "rb") as old:  # the check, just before the rename
                current = old.read()
                if current != expected:
                    return Changed(_decode(current, os_path), _stamp(os.fstat(old.fileno())))
            # Python may hand the GIL to another thread between the check and the rename: an
            # exchange leaves what the rename displaced at `temp`, to be read and merged.
            if not _exchange(temp, real):
                os.replace(temp, real)
                return _stamp(os.fstat(fd))
            stamp = _stamp(os.fstat(fd))
            with open(temp, "rb") as displaced:
                replaced = displaced.read()
            if replaced != expected:
                return Displaced(_decode(replaced, os_path), stamp)
            return stamp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


_RENAME_EXCHANGE = 2  # linux/fs.h
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
except (AttributeError, OSError):  # not Linux, or a libc without it
    _renameat2 = None


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two names (Linux renameat2); False where unsupported."""
    if _renameat2 is None:
        return False
    at_fdcwd = -100
    return _renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _create(real: str, data: bytes) -> tuple | None:
    """A new file; None when another program created one meanwhile (never overwritten)."""
    try:
        fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(fd)
        return _stamp(os.fstat(fd))


def _swap_in_place(real: str, expected: bytes, data: bytes) -> object:
    """For a hard-linked file, another user's, or one in a directory we cannot write: a
    rename would split the link, change the owner, or be refused."""
    with open(real, "r+b") as file:
        current = file.read()
        if current != expected:
            return Changed(_decode(current, real), _stamp(os.fstat(file.fileno())))
        file.seek(0)
        file.write(data)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())
        return _stamp(os.fstat(file.fileno()))
