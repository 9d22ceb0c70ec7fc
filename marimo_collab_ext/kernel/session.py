"""One marimo kernel per notebook room: start, run, watch, restart, stop.

The room calls these coroutines; kernel notifications come back through callbacks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import adapter
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
from .outputs import KernelOutputs, merge_model_state

log = logging.getLogger(__name__)

NotificationCallback = Callable[[str, dict[str, Any]], None]
StatusCallback = Callable[[str, "str | None"], None]

# How long shutdown waits for the killed process to be reaped.
_KILL_WAIT = 5.0
# Button presses waiting for the kernel, each its own run; beyond this, refuse, never merge.
MAX_HELD_UI_BATCHES = 256
_STDERR_IN_REASON = 8


def _exit_reason(code: int, stderr: Iterable[str]) -> str:
    if code < 0:
        try:
            what = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"was killed by signal {-code}"
    else:
        what = f"exited with code {code}"
    tail = [line for line in stderr if line.strip()][-_STDERR_IN_REASON:]
    return f"Kernel {what}" + ("\n" + "\n".join(tail) if tail else "")


class KernelSession:
    """The marimo kernel of one notebook, shared by every peer of its room.

    Outputs and UI values are folded here so a late joiner gets them at once.
    """

    def __init__(
        self,
        *,
        python: str = sys.executable,
        cwd: str,
        notebook_path: str | None,
        on_notification: NotificationCallback,
        on_status: StatusCallback,
        max_output_bytes: int = 5 * 2**20,
        startup_timeout: float = 30,
        app_config: dict[str, Any] | None = None,
    ) -> None:
        self.python = python
        # marimo.App(...) options of the notebook (width, sql_output...); read at each start.
        self.app_config = dict(app_config or {})
        self.cwd = cwd
        self.notebook_path = notebook_path
        self.startup_timeout = startup_timeout
        self._on_notification = on_notification
        self._on_status = on_status
        self._outputs = KernelOutputs(max_output_bytes)
        self._cells: dict[str, CellCode] = {}
        self._proc: adapter.KernelProcess | None = None
        # A kernel not yet ready is kept apart: nothing may be sent to it, and its
        # queues may be closing on another thread if it fails.
        self._starting: adapter.KernelProcess | None = None
        self._status = "none"
        self._lock = asyncio.Lock()
        # Kinds of the commands whose `completed-run` has not arrived, oldest first.
        self._pending: collections.deque[str] = collections.deque()
        # At most one UI update in flight: marimo would merge queued UI updates into
        # one run with one completed-run, and our count of pending runs would drift.
        # Newer values wait here in batches, oldest first: a slider's newer value
        # replaces its older one in the last batch, but a button press is an event
        # and starts a new batch rather than swallow the press before it. Widget model
        # messages (ModelWrite) share this one slot: marimo merges those the same way.
        self._ui_in_flight = False
        self._ui_held: collections.deque[dict[str, Any] | ModelWrite] = collections.deque()
        self.started_at: float | None = None

    @property
    def status(self) -> str:
        """none, starting, ready, busy, idle, dead or stopped."""
        return self._status

    @property
    def pid(self) -> int | None:
        """The kernel process id while one is running."""
        return self._proc.pid if self._proc is not None else None

    # -- callbacks to the room ----------------------------------------------

    def _set_status(self, status: str, message: str | None = None) -> None:
        if status == self._status and message is None:
            return
        self._status = status
        try:
            self._on_status(status, message)
        except Exception:
            log.exception("on_status callback failed")

    def _emit(self, op: str, data: dict[str, Any]) -> None:
        try:
            self._on_notification(op, data)
        except Exception:
            log.exception("on_notification callback failed")

    def _refresh_activity(self) -> None:
        if self._status in ("ready", "idle", "busy"):
            # Registering edits is bookkeeping and a function call a query: neither is a run.
            waiting = any(kind not in ("edit", "call") for kind in self._pending)
            busy = waiting or bool(self._ui_held) or self._outputs.busy()
            self._set_status("busy" if busy else "idle")

    # -- kernel events (on the event loop, handed over by adapter threads) ---

    def _on_messages(
        self, proc: adapter.KernelProcess, batch: list[tuple[str, dict[str, Any]]]
    ) -> None:
        if proc is not self._proc and proc is not self._starting:
            return  # a kernel we already replaced
        for op, data in batch:
            self._emit(op, self._outputs.apply(op, data))
            if op == "completed-run":
                self._completed()
        self._refresh_activity()

    def _send(self, proc: adapter.KernelProcess, command: Any, kind: str = "run") -> None:
        proc.send(command)
        self._pending.append(kind)
        self._refresh_activity()

    def _completed(self) -> None:
        if not self._pending:
            return
        if self._pending.popleft() == "ui":
            self._ui_in_flight = False
            if self._ui_held and self._proc is not None:
                self._send_ui(self._proc, self._ui_held.popleft())
        if not self._pending:
            # The kernel has finished all we asked. An interrupt that lands between
            # marimo's bookkeeping steps can skip a cell's final "idle": settle it here.
            self._idle_cells(self._outputs.stop_active())

    def _idle_cells(self, cell_ids: list[str]) -> None:
        for cell_id in cell_ids:
            self._emit("cell-op", {"cell_id": cell_id, "status": "idle"})

    def _send_ui(self, proc: adapter.KernelProcess, held: dict[str, Any] | ModelWrite) -> None:
        self._ui_in_flight = True
        if isinstance(held, ModelWrite):
            self._send(proc, adapter.model_message(held), "ui")
        else:
            self._send(proc, adapter.update_ui(held), "ui")

    def _forget_commands(self) -> None:
        self._pending.clear()
        self._ui_in_flight = False
        self._ui_held.clear()

    def _on_exit(self, proc: adapter.KernelProcess, code: int) -> None:
        # Reap the rest of its process group and the queues off the loop.
        asyncio.get_running_loop().run_in_executor(None, proc.kill)
        reason = _exit_reason(code, proc.stderr_tail)
        if not proc.ready.done():
            # Still starting: the start coroutine reports it and raises.
            proc.ready.set_exception(KernelStartError(reason))
            return
        if proc is not self._proc:
            return  # stopped on purpose, or already replaced
        self._proc = None
        self._forget_commands()
        self._idle_cells(self._outputs.stop_active())
        self._set_status("dead", reason)

    # -- lifecycle -----------------------------------------------------------

    def _remember(self, cells: Iterable[CellCode]) -> None:
        self._cells = {c.id: c for c in cells}
        self._outputs.set_code({c.id: c.code for c in self._cells.values()})

    def _clear_outputs(self) -> None:
        # marimo's own way to blank a cell, so peers clear without a new message type.
        for cell_id in self._outputs.clear():
            self._emit(
                "cell-op",
                {
                    "cell_id": cell_id,
                    "output": {"channel": "output", "mimetype": "text/plain", "data": ""},
                    "console": [],
                    "status": "idle",
                    "stale_inputs": False,
                },
            )

    async def start(self, cells: list[CellCode]) -> None:
        """Launch the kernel and register the whole notebook without running it.

        Raises KernelStartError(reason); a kernel already running is kept.
        """
        self._remember(cells)
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self, message: str | None = None) -> None:
        if self._proc is not None:
            return
        self._clear_outputs()
        self._set_status("starting", message)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        proc: adapter.KernelProcess | None = None
        try:
            version = await loop.run_in_executor(
                None, adapter.kernel_marimo_version, self.python, self.startup_timeout
            )
            adapter.check_version(version)
            proc = adapter.KernelProcess(
                python=self.python,
                cwd=self.cwd,
                notebook_path=self.notebook_path,
                app_config=self.app_config,
                cells=list(self._cells.values()),
                loop=loop,
                on_messages=self._on_messages,
                on_exit=self._on_exit,
            )
            self._starting = proc
            try:
                await asyncio.wait_for(asyncio.shield(proc.ready), self.startup_timeout)
            except asyncio.TimeoutError:
                raise KernelStartError(
                    f"Kernel did not become ready within {self.startup_timeout:.0f} s"
                ) from None
            if not proc.alive():  # ready, then gone before we resumed
                raise KernelStartError(_exit_reason(proc.returncode or 0, proc.stderr_tail))
        except Exception as e:
            self._starting = None
            if proc is not None:
                await loop.run_in_executor(None, proc.kill)
            error = e if isinstance(e, KernelStartError) else KernelStartError(f"{e}")
            self._set_status("dead", error.reason)
            if error is e:
                raise
            raise error from e
        self._proc, self._starting = proc, None
        self.started_at = time.monotonic() - started
        self._set_status("ready", f"marimo {version}, pid {proc.pid}")
        self._send(proc, adapter.create_notebook(self._cells.values()))

    async def _ensure_started(self) -> adapter.KernelProcess:
        async with self._lock:
            await self._start_locked()
            assert self._proc is not None
            return self._proc

    async def run(self, cells: list[CellCode], *, stale_only: bool = False) -> None:
        """Run these cells with this code (starting the kernel if needed).

        marimo's reactivity then reruns their dependents; completion is `completed-run`.
        `stale_only` skips the cells whose output is current, as marimo's "run stale"
        does, when that loses no rerun: every cell named, and marimo in autorun mode.
        """
        cells = list(cells)
        for cell in cells:
            self._cells[cell.id] = cell
        self._outputs.update_code({c.id: c.code for c in cells})
        proc = await self._ensure_started()
        if stale_only and proc.autorun and {c.id for c in cells} >= self._cells.keys():
            # Every stale cell is then among those run, and marimo reruns their dependents.
            cells = [c for c in cells if not self._outputs.is_current(c.id, c.code)]
        if not cells:
            return
        self._send(proc, adapter.execute(cells))

    async def sync_cells(self, cells: list[CellCode]) -> None:
        """Tell the kernel the notebook changed without running anything.

        Deleted cells leave the graph; edited cells wait, shown stale, for a run.
        """
        old = self._cells
        self._remember(cells)
        codes = {c.id: c.code for c in cells if c.id in old and old[c.id].code != c.code}
        configs = {c.id: c.config for c in cells if c.id in old and old[c.id].config != c.config}
        deleted = [cell_id for cell_id in old if cell_id not in self._cells]
        if self._proc is None or not (codes or configs or deleted):
            return
        self._send(self._proc, adapter.edit(codes, configs, deleted), "edit")
        self._outputs.registered(list(codes))

    async def set_ui_value(self, object_id: str, value: Any) -> None:
        """Set a UI element's value as if this peer moved it; dependents rerun.

        Raises UnknownObject when no current output shows that element, and
        UiBacklogFull when too many button presses already wait for the kernel.
        """
        if self._proc is None:
            raise UnknownObject(f"No UI element {object_id!r}: the kernel is not running")
        last = self._ui_held[-1] if self._ui_held else None
        in_new_batch = self._ui_in_flight and (
            not isinstance(last, dict) or (object_id in last and self._outputs.is_event(object_id))
        )
        if in_new_batch and len(self._ui_held) >= MAX_HELD_UI_BATCHES:
            raise UiBacklogFull(f"{MAX_HELD_UI_BATCHES} UI events already wait for the kernel")
        self._outputs.set_ui_value(object_id, value)
        if not self._ui_in_flight:
            self._send_ui(self._proc, {object_id: value})
            return
        if in_new_batch:
            self._ui_held.append({})
        batch = self._ui_held[-1]
        batch.pop(object_id, None)  # re-insert: last write goes last
        batch[object_id] = value

    def element_tag(self, object_id: str) -> str | None:
        """The tag (marimo-table, ...) of the UI element shown under this id; None if none."""
        return self._outputs.element_tag(object_id)

    async def function_call(self, call: FunctionCall, element: str) -> None:
        """Call a function of the UI element `call.namespace`, which must still be an `element`.

        Never starts a kernel (KernelError); UnknownObject when no output shows that element.
        The answer is the kernel's `function-call-result` notification.
        """
        if self._proc is None:
            raise KernelError("The kernel is not running")
        if self._outputs.element_tag(call.namespace) != element:
            raise UnknownObject(f"No {element} {call.namespace!r} in the current outputs")
        self._send(self._proc, adapter.invoke_function(call), "call")

    async def set_model_value(self, write: ModelWrite) -> None:
        """Send a peer's widget model message; an update is kept for late joiners.

        UnknownObject when no such model is open, UiBacklogFull past the backlog. Updates of
        one model waiting together merge (marimo would merge them too); custom messages never.
        """
        if self._proc is None or not self._outputs.has_model(write.model_id):
            raise UnknownObject(f"No widget model {write.model_id!r} is open")
        last = self._ui_held[-1] if self._ui_held else None
        merge = (self._ui_in_flight and isinstance(last, ModelWrite) and write.method == "update"
                 and last.method == "update" and last.model_id == write.model_id)
        if self._ui_in_flight and not merge and len(self._ui_held) >= MAX_HELD_UI_BATCHES:
            raise UiBacklogFull(f"{MAX_HELD_UI_BATCHES} UI events already wait for the kernel")
        if write.method == "update":
            self._outputs.write_model(write.model_id, write.state, write.buffer_paths,
                                      write.buffers)
        if not self._ui_in_flight:
            self._send_ui(self._proc, write)
        elif merge:
            buffers = dict(zip(map(tuple, last.buffer_paths), last.buffers, strict=True))
            merge_model_state(last.state, buffers, write.state, write.buffer_paths,
                              write.buffers)
            last.buffer_paths, last.buffers = [list(p) for p in buffers], list(buffers.values())
        else:
            self._ui_held.append(ModelWrite(write.model_id, write.method, dict(write.state),
                                            list(write.buffer_paths), list(write.buffers),
                                            write.content))

    async def interrupt(self) -> None:
        """Interrupt the running cell (SIGINT to the kernel), like Ctrl+C."""
        if self._proc is not None:
            self._proc.interrupt()

    async def send_stdin(self, text: str) -> None:
        """Answer the `input()` a cell is waiting in; peers see the answer.

        Raises NoPendingInput when no cell is waiting.
        """
        if self._proc is None or not self._outputs.waiting_for_stdin():
            raise NoPendingInput("No cell is waiting for input")
        self._proc.send_input(text)
        answered = self._outputs.answer_stdin(text)
        if answered is not None:
            cell_id, console = answered
            # cell-op console semantics: [] clears, a list appends.
            self._emit("cell-op", {"cell_id": cell_id, "console": []})
            self._emit("cell-op", {"cell_id": cell_id, "console": console})

    async def restart(self, cells: list[CellCode]) -> None:
        """Replace the kernel with a fresh one; every output is cleared for all peers.

        Raises KernelStartError when the new kernel cannot start.
        """
        self._remember(cells)
        async with self._lock:
            await self._stop_locked()
            await self._start_locked("restarting: outputs cleared")

    async def _stop_locked(self) -> bool:
        proc, self._proc = self._proc, None
        if proc is None:
            return False
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, proc.kill)
        await loop.run_in_executor(None, proc.wait, _KILL_WAIT)
        self._forget_commands()
        self._idle_cells(self._outputs.stop_active())
        return True

    async def shutdown(self, message: str | None = None) -> None:
        """Kill the kernel and its process group; status becomes `stopped` (with `message`)."""
        async with self._lock:
            if await self._stop_locked() or self._status not in ("none", "stopped"):
                self._set_status("stopped", message)

    def snapshot(self) -> dict[str, Any]:
        """The `kernel` field of a join response: status, outputs, UI values."""
        return self._outputs.snapshot(self._status)
