"""The notebook's marimo kernel: one process per room, driven over marimo's IPC.

Only this package imports marimo internals (`marimo._*`); see adapter.py.
"""

from .model import (
    CellCode,
    KernelError,
    KernelStartError,
    NoPendingInput,
    UiBacklogFull,
    UnknownObject,
)
from .session import KernelSession

__all__ = [
    "CellCode",
    "KernelError",
    "KernelSession",
    "KernelStartError",
    "NoPendingInput",
    "UiBacklogFull",
    "UnknownObject",
]
