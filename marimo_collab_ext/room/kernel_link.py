"""A room's shared marimo kernel: runs the room's own code, relays outputs to every peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import NamedTuple

from ..kernel import CellCode, KernelError, KernelSession, UiBacklogFull, UnknownObject
from .errors import BadRequest, RateLimited, UnknownCell
from .errors import KernelError as KernelErrorResponse
from .kernel_caps import KernelCaps
from .presence import Connection, Peer
from .room import Room, encode
from .widget_requests import parse_function_call, parse_model_write


@contextlib.contextmanager
def protocol_errors() -> Iterator[None]:
    """The kernel's refusals as the protocol's error answers (docs/protocol.md)."""
    try:
        yield
    except UnknownObject as exc:
        raise BadRequest(exc.reason) from None
    except UiBacklogFull as exc:
        raise RateLimited(exc.reason) from None
    except KernelError as exc:
        raise KernelErrorResponse(exc.reason) from None

log = logging.getLogger(__name__)

# Function calls one connection may have waiting for their result (docs/protocol.md "Running").
MAX_CALLS_IN_FLIGHT = 64


class _Caller(NamedTuple):
    """Who made a function call: its result goes to this connection only."""

    peer_id: str
    connection: Connection


class KernelLink:
    """Starts the kernel on demand, keeps it in step with the room, stops it when idle."""

    def __init__(self, room: Room, settings, root_dir: str, caps: KernelCaps) -> None:
        self.room = room
        self.settings = settings
        self.root_dir = root_dir
        self.caps = caps
        self.session: KernelSession | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._cull_timer: asyncio.TimerHandle | None = None
        # (username, owner) of who asked for the kernel last: counted as its starter
        self._starter: tuple[str, bool] | None = None
        self._sync_task: asyncio.Task | None = None
        self._alone_since: float | None = None  # when the room's last person left
        self._calls: dict[str, _Caller] = {}  # function_call_id -> caller, until answered
        room.listeners.append(self._on_room_event)

    def _make_session(self) -> KernelSession:
        notebook = os.path.join(self.root_dir, self.room.path)
        return KernelSession(
            python=self.settings.kernel_python, cwd=os.path.dirname(notebook),
            notebook_path=notebook, on_notification=self._relay, on_status=self._announce,
            max_output_bytes=self.settings.max_output_bytes,
            startup_timeout=self.settings.kernel_startup_timeout)

    def _relay(self, op: str, data: dict) -> None:
        if op == "function-call-result":  # one peer's query: its answer is that peer's alone
            caller = self._calls.pop(data.get("function_call_id"), None)
            if caller is not None:
                caller.connection.send(encode({"type": "kernel", "op": op, "data": data}))
            return
        self.room.broadcast({"type": "kernel", "op": op, "data": data})

    def _announce(self, status: str, message: str | None) -> None:
        if status in ("starting", "dead", "stopped"):
            self._calls.clear()  # that kernel will answer none of them
        if status in ("dead", "stopped"):
            self.caps.release(self)
            self._cancel_cull()
        else:
            if status == "starting" and self._starter is not None:
                # Counted even when a run raced a stopping kernel past _start's check.
                username, owner = self._starter
                self.caps.take(self, username, owner=owner, check=False)
            self._touch()  # a run that ends (idle) starts the idle time anew
        event = {"type": "kernel_status", "status": status}
        if message:
            event["message"] = message
        self.room.broadcast(event)

    def cells(self, cell_ids: list[str] | None = None) -> list[CellCode]:
        """The room's current code of these cells (all when None), never a client's copy."""
        room = self.room
        ids = room.structure.order if cell_ids is None else cell_ids
        return [CellCode(cid, room.authorities[cid].doc, room.structure.meta[cid].name,
                         dict(room.structure.meta[cid].config)) for cid in ids]

    @property
    def alive(self) -> bool:
        return self.session is not None and self.session.status not in ("none", "dead", "stopped")

    def snapshot(self) -> dict:
        if self.session is None:
            return {"status": "none", "outputs": {}, "ui_values": {}, "models": {}}
        return self.session.snapshot()

    # ---- requests --------------------------------------------------------------------------

    async def run(self, peer: Peer, cell_ids: object) -> None:
        """Run these cells; `peer` starts the kernel if none runs (within the kernel caps)."""
        if not isinstance(cell_ids, list) or not all(isinstance(c, str) for c in cell_ids):
            raise BadRequest("`cell_ids` must be a list of cell ids")
        unknown = [c for c in cell_ids if c not in self.room.authorities]
        if unknown:
            raise UnknownCell(f"no cell {unknown[0]}", cell_id=unknown[0])
        cells = self.cells(cell_ids)  # captured now: later edits are not part of this run
        # Run all, as the page's button sends it: like marimo's, it skips current cells, so
        # their outputs do not flicker. An explicit run of one cell always runs it.
        run_all = len(cell_ids) > 1 and set(cell_ids) >= set(self.room.structure.order)
        self._touch()
        self._starter = (peer.user["username"], peer.owner)
        with protocol_errors():
            if not self.alive:
                await self._start(peer)
            await self.session.run(cells, stale_only=run_all)

    async def set_ui_value(self, sender_peer_id: str, object_id: object, value: object) -> None:
        if not isinstance(object_id, str):
            raise BadRequest("`object_id` must be a string")
        if not self.alive:
            raise BadRequest(f"no UI element {object_id}: the kernel is not running")
        self._touch()
        with protocol_errors():
            await self.session.set_ui_value(object_id, value)
        # marimo does not echo one user's UI value to the others: the room does
        self.room.broadcast({"type": "kernel", "op": "send-ui-element-message",
                             "data": {"ui_element": object_id, "message": {
                                 "type": "marimo-ui-value-update", "value": value}}},
                            exclude=sender_peer_id)

    def called_function(self, message: dict) -> tuple[str, str]:
        """(element tag, function name) a `function_call` calls: what its role depends on.

        BadRequest when malformed or no output shows the element; kernel_error with no kernel.
        """
        call = parse_function_call(message)
        if not self.alive:
            raise KernelErrorResponse("no kernel is running")
        tag = self.session.element_tag(call.namespace)
        if tag is None:
            raise BadRequest(f"no UI element {call.namespace} in the current outputs")
        return tag, call.function_name

    async def function_call(self, peer: Peer, message: dict, element: str) -> None:
        """Hand a function call to the kernel; its result will go to `peer` only.

        `element` is the tag authorized for it: the call is refused if the element changed.
        """
        call = parse_function_call(message)
        if call.call_id in self._calls:
            raise BadRequest("that `function_call_id` is already waiting for its result")
        if sum(c.connection is peer.connection for c in self._calls.values()) \
                >= MAX_CALLS_IN_FLIGHT:
            raise RateLimited(f"{MAX_CALLS_IN_FLIGHT} function calls already wait for results")
        if not self.alive:
            raise KernelErrorResponse("no kernel is running")
        self._calls[call.call_id] = _Caller(peer.peer_id, peer.connection)
        self._touch()  # paging a table is using the kernel, though nothing reruns
        try:
            with protocol_errors():
                await self.session.function_call(call, element)
        except Exception:
            self._calls.pop(call.call_id, None)  # refused: no result will come
            raise

    async def set_model_value(self, sender_peer_id: str, message: dict) -> None:
        """Send a widget model message to the kernel; echo an update to the other peers."""
        write = parse_model_write(message)
        if not self.alive:
            raise BadRequest(f"no widget model {write.model_id}: the kernel is not running")
        self._touch()
        with protocol_errors():
            await self.session.set_model_value(write)
        if write.method == "update":  # marimo echoes no client write: in its own form
            self.room.broadcast({"type": "kernel", "op": "model-lifecycle", "data": {
                "model_id": write.model_id, "message": {
                    "method": "update", "state": write.state,
                    "buffer_paths": write.buffer_paths, "buffers": write.buffers}}},
                exclude=sender_peer_id)

    async def interrupt(self) -> None:
        self._touch()
        if self.session is not None:
            await self.session.interrupt()

    async def restart(self, peer: Peer) -> None:
        """A fresh kernel; `peer` starts it when none ran (within the kernel caps)."""
        self._touch()
        with protocol_errors():
            await self._start(peer, restart=True)

    async def stdin(self, text: object) -> None:
        if not isinstance(text, str):
            raise BadRequest("`text` must be a string")
        if self.session is None:
            raise BadRequest("no cell is waiting for input")
        self._touch()
        try:
            await self.session.send_stdin(text)
        except KernelError as exc:
            raise BadRequest(exc.reason) from None

    async def start_if_configured(self, peer: Peer) -> None:
        """Start on `peer`'s join when `kernel_start_on_join` is set and `peer` is a runner.

        A viewer's or editor's join starts nothing; the status goes to every peer.
        """
        if not self.settings.kernel_start_on_join or peer.role != "runner" or self.alive:
            return
        try:
            await self._start(peer)
        except KernelErrorResponse as exc:  # a cap: the joiner's first run will say so
            log.info("marimo-collab: no kernel on join for %s: %s", self.room.path, exc.message)
        except KernelError as exc:
            log.warning("marimo-collab: kernel for %s did not start: %s",
                        self.room.path, exc.reason)

    async def _start(self, peer: Peer, restart: bool = False) -> None:
        """Start (or restart) the kernel for `peer`, within the kernel caps (kernel_caps.py).

        A restart of a running kernel takes no new place: its starter keeps it.
        """
        if not self.alive:
            self._starter = (peer.user["username"], peer.owner)
            self.caps.take(self, *self._starter)
        self.session = self.session or self._make_session()
        try:
            if restart:
                await self.session.restart(self.cells())
            else:
                await self.session.start(self.cells())
        except BaseException:
            if not self.alive:
                self.caps.release(self)
            raise

    # ---- keeping in step -------------------------------------------------------------------

    def _on_room_event(self, event: str) -> None:
        if event == "peers":
            self._forget_calls_of_departed()
            self._schedule_idle_stop()
        elif event in ("edited", "structure") and self.session is not None:
            # marimo shows edited, not-yet-run cells as stale; deleted cells leave the graph
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.ensure_future(self._sync())

    async def _sync(self) -> None:
        await asyncio.sleep(0.05)  # coalesce a burst of keystrokes into one sync
        if self.session is not None and self.session.status not in ("none", "dead", "stopped"):
            try:
                await self.session.sync_cells(self.cells())
            except KernelError:
                log.debug("kernel sync failed for %s", self.room.path)

    def _forget_calls_of_departed(self) -> None:
        peers = self.room.presence.peers
        for call_id, caller in list(self._calls.items()):
            peer = peers.get(caller.peer_id)
            if peer is None or peer.connection is not caller.connection:
                del self._calls[call_id]

    def _touch(self) -> None:
        """Activity (a run, a UI event, a run ending): the idle kernel's cull is put off."""
        self._cancel_cull()
        timeout = self.settings.kernel_cull_idle_timeout
        if timeout > 0:
            self._cull_timer = asyncio.get_running_loop().call_later(timeout, self._cull)

    def _cancel_cull(self) -> None:
        if self._cull_timer is not None:
            self._cull_timer.cancel()
            self._cull_timer = None

    def _cull(self) -> None:
        # Even with peers in the room; never mid-run (its end touches again).
        self._cull_timer = None
        if self.session is not None and self.session.status in ("ready", "idle"):
            timeout = self.settings.kernel_cull_idle_timeout
            asyncio.ensure_future(self.session.shutdown(
                f"stopped after {timeout:g} s without a run or UI activity"
                " (c.MarimoCollab.kernel_cull_idle_timeout); the next run starts it again"))

    def unattended_since(self) -> float | None:
        """When the room's last person left, while nobody is in it (kernel_caps.Evictable)."""
        return self._alone_since if len(self.room.presence) == 0 else None

    def evict(self) -> None:
        """Give this kernel's place to someone who needs one (kernel_caps.Evictable)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._cancel_cull()
        if self.session is not None:
            asyncio.ensure_future(self.session.shutdown(
                "stopped to free its place under the kernel limit while nobody was in the"
                " notebook; the next run starts it again"))

    def _schedule_idle_stop(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._alone_since = time.monotonic() if len(self.room.presence) == 0 else None
        if len(self.room.presence) == 0 and self.session is not None:
            self._idle_timer = asyncio.get_running_loop().call_later(
                self.settings.kernel_idle_timeout,
                lambda: asyncio.ensure_future(self.shutdown()))

    async def shutdown(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._cancel_cull()
        if self.session is not None:
            await self.session.shutdown()
