"""Operational transformation core: a pure-Python port of CodeMirror's collab model.

``ChangeSet`` and ``MapMode`` follow @codemirror/state 6.7, ``rebase_updates`` and
``PeerDocument`` follow @codemirror/collab 6.1; positions count UTF-16 code units.
"""

from .changeset import ChangeSet, MapMode
from .peer import PeerDocument
from .rebase import Update, rebase_updates
from .text import utf16_len, utf16_slice, utf16_to_index

__all__ = [
    "ChangeSet",
    "MapMode",
    "PeerDocument",
    "Update",
    "rebase_updates",
    "utf16_len",
    "utf16_slice",
    "utf16_to_index",
]
