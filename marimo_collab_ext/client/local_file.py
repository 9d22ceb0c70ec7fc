"""The mirrored file on disk: a cheap change signature and atomic replacement."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Signature", "atomic_write", "file_signature"]


@dataclass(frozen=True)
class Signature:
    """What a poll compares: cheap, and changed by in-place writes and by rename-saves alike."""

    mtime_ns: int
    size: int
    inode: int


def file_signature(path: Path) -> Signature | None:
    """The file's stat signature, or None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return Signature(st.st_mtime_ns, st.st_size, st.st_ino)


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` by `text`: a temp file in the same directory, fsynced, then renamed.

    An editor (or a crash) never sees half a file; the file keeps its permissions.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mirror", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
