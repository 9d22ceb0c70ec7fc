"""Values the room and the kernel layer exchange: cells in, errors out.

Plain data with no marimo import, so the room can type against it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Statuses announced through `on_status` (PROTOCOL.md, "Running (marimo kernel)").
STATUSES = ("none", "starting", "ready", "busy", "idle", "dead", "stopped")


@dataclass(frozen=True)
class CellCode:
    """One notebook cell as the room holds it: our id, its code, name and config.

    The id is passed straight through to marimo as its cell id.
    """

    id: str
    code: str
    name: str = "_"
    config: dict[str, Any] = field(default_factory=dict)


class KernelError(Exception):
    """Base of the errors a KernelSession raises to the room.

    `reason` is a human-readable sentence fit for a `kernel_error` response.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KernelStartError(KernelError):
    """The kernel could not be launched (wrong marimo version, crash, timeout).

    Maps to the protocol's `kernel_error` answer to `run`.
    """


class UnknownObject(KernelError):
    """A UI value was sent for an object id that no current output displays.

    Maps to the protocol's `bad_request` answer to `set_ui_value`.
    """


class UiBacklogFull(KernelError):
    """Too many UI events (button presses) already wait for a busy kernel.

    Maps to `rate_limited`: refusing is honest, merging presses would lose them.
    """


class NoPendingInput(KernelError):
    """Text was sent to stdin while no cell is waiting in `input()`.

    Refused so that stray text never answers a later, unrelated prompt.
    """


@dataclass(frozen=True)
class FunctionCall:
    """A peer's call of a function a UI element registered (a table's `search`, ...).

    `namespace` is the element's object id; the kernel answers `function-call-result`
    with `call_id`.
    """

    call_id: str
    namespace: str
    function_name: str
    args: dict[str, Any]


@dataclass
class ModelWrite:
    """A peer's message to a widget model (anywidget), as marimo's frontend sends it.

    `update` carries changed `state` and base64 `buffers` at `buffer_paths` inside it;
    `custom` carries `content` (and `buffers`) for the widget's Python side only.
    """

    model_id: str
    method: str  # "update" or "custom"
    state: dict[str, Any] = field(default_factory=dict)
    buffer_paths: list[list[str | int]] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)
    content: Any = None
