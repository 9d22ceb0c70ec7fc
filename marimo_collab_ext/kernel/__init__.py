"""The notebook's marimo kernel: one process per room, driven over marimo's IPC.

Only this package imports marimo internals (`marimo._*`); see adapter.py.
"""

from .model import (
    CellCode,
    FunctionCall,
    KernelError,
    KernelStartError,
    ModelWrite,
    NoPendingInput,
    UiBacklogFull,
    UnknownObject,
)
from .session import KernelSession

__all__ = [
    "CellCode",
    "FunctionCall",
    "KernelError",
    "KernelSession",
    "KernelStartError",
    "ModelWrite",
    "NoPendingInput",
    "UiBacklogFull",
    "UnknownObject",
]
