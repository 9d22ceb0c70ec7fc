"""One notebook the agent has joined: its connection, what peers see of the kernel, its typing.

The agent is a peer like any other (docs/protocol.md, "Agents and narrowed roles"): it joins
with `"agent": true` and the role it was narrowed to, so the room shows it as "<user>'s agent"
with that role.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from ..auth.roles import Role
from ..cli.connection import KeepAlive, open_client
from ..cli.run import CellChoiceError, choose_cells, output_text
from ..client import CollabClient
from ..kernel.outputs import KernelOutputs
from ..ot import ChangeSet
from ..ot.text import index_to_utf16, utf16_len, utf16_slice
from ..persistence.text_diff import diff_specs
from .typist import Typist

# Kernel statuses after which nothing more will run until someone asks.
_SETTLED = ("idle", "ready", "none", "dead", "stopped")
_ERROR = "application/vnd.marimo+error"


class AgentError(Exception):
    """A tool call that cannot be done, with a message for the model."""


def log(text: str) -> None:
    print(f"marimo-collab mcp: {text}", file=sys.stderr, flush=True)  # stdout is MCP's


class AgentNotebook:
    """The agent's peer in one notebook's room."""

    def __init__(self, path: str, client: CollabClient, type_delay: float) -> None:
        self.path = path
        self.client = client
        self.typist = Typist(client, type_delay)
        self.kernel_status = "none"
        self.outputs = KernelOutputs(max_output_bytes=2**31)
        self.changed = asyncio.Event()  # set on every kernel event: waiters re-check
        self._learn(resumed=False)
        client.listeners.append(self._on_event)
        self.keep = KeepAlive(client, log, on_rejoined=self._learn)
        self.keep.start()
        # Broadcasts also queue on `events`, which nobody else reads here.
        self._drain = asyncio.ensure_future(self._drain_events())

    @classmethod
    async def open(cls, server: str, path: str, token: str | None, role: Role,
                   type_delay: float) -> AgentNotebook:
        client = await open_client(server, path, token,
                                   join_fields={"agent": True, "role": role.wire_name})
        return cls(path, client, type_delay)

    async def close(self) -> None:
        self._drain.cancel()
        await self.keep.stop()
        await self.client.close()

    async def _drain_events(self) -> None:
        while True:
            await self.client.events.get()

    # ---- what the room says ---------------------------------------------------------------

    @property
    def role(self) -> Role:
        return Role.parse(self.client.join_response["self"]["role"])

    def _learn(self, resumed: bool) -> None:
        """Start over from a join response's kernel snapshot (first join and every re-join)."""
        kernel = self.client.join_response.get("kernel") or {}
        self.kernel_status = kernel.get("status", "none")
        self.peers = {p["peer_id"]: p for p in self.client.join_response.get("peers", [])
                      if p.get("peer_id") != self.client.peer_id}
        # pending suggestions, and what became of the latest resolved ones
        self.suggestions = {s["id"]: s for s in self.client.join_response.get("suggestions", [])}
        self.resolved: dict[str, str] = getattr(self, "resolved", {})
        self.outputs = KernelOutputs(max_output_bytes=2**31)
        for cell_id, entry in (kernel.get("outputs") or {}).items():
            self.outputs.apply("cell-op", {"cell_id": cell_id, "output": entry.get("output"),
                                           "console": entry.get("console") or [],
                                           "status": entry.get("status")})
        for object_id, value in (kernel.get("ui_values") or {}).items():
            try:
                self.outputs.set_ui_value(object_id, value)
            except LookupError:
                pass  # an element no output shows
        self.changed.set()

    def _on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "kernel_status":
            self.kernel_status = event.get("status", self.kernel_status)
        elif kind == "kernel":
            self.outputs.apply(event.get("op", ""), event.get("data") or {})
        elif kind == "presence":
            self._presence(event)
            return
        elif kind == "suggestion":
            suggestion = event.get("suggestion") or {}
            if event.get("event") == "created":
                self.suggestions[suggestion.get("id")] = suggestion
            else:
                self.suggestions.pop(suggestion.get("id"), None)
                self.resolved[suggestion.get("id")] = event.get("event")
                if len(self.resolved) > 50:  # the latest are what the model needs to know
                    del self.resolved[next(iter(self.resolved))]
            return
        elif kind == "cursor" and event.get("peer_id") in self.peers:
            self.peers[event["peer_id"]]["cursor"] = {"document_id": event.get("document_id")}
            return
        else:
            return
        self.changed.set()

    def _presence(self, event: dict) -> None:
        peer = event.get("peer") or {}
        if peer.get("peer_id") == self.client.peer_id:
            self.client.join_response["self"]["role"] = peer["role"]  # a re-check changed it
        elif event.get("event") == "leave":
            self.peers.pop(peer.get("peer_id"), None)
        elif peer.get("peer_id"):
            self.peers[peer["peer_id"]] = peer

    def settled(self) -> bool:
        """Nothing queued or running, and the kernel not busy or starting."""
        return self.kernel_status in _SETTLED and not self.outputs.busy()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds; False after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                return done()
        return True

    # ---- cells ----------------------------------------------------------------------------

    def cell_id(self, cell: str | int) -> str:
        """A cell id from an id or a 1-based position (negative counts from the end)."""
        try:
            return choose_cells(self.client, [str(cell)], False)[0]
        except CellChoiceError as exc:
            raise AgentError(str(exc)) from None

    def label(self, cell_id: str) -> str:
        cell = self.client.cells[cell_id]
        name = f" {cell.name}" if cell.name and cell.name != "_" else ""
        return f"#{self.client.order.index(cell_id) + 1} {cell_id}{name}"

    def code(self, cell_id: str) -> str:
        return self.client.text(cell_id)

    def edit_specs(self, cell_id: str, text: str, start: int | None, end: int | None,
                   find: str | None) -> list[dict]:
        """The change asked for, as UTF-16 specs on the current text (docs/clients.md)."""
        code = self.code(cell_id)
        if find is not None:
            if start is not None or end is not None:
                raise AgentError("give either `find` or `start`/`end`, not both")
            count = code.count(find) if find else 0
            if count != 1:
                raise AgentError(f"`find` must occur exactly once in the cell; it occurs {count}"
                                 " times (include more of the surrounding code)")
            start = code.index(find)
            end = start + len(find)
        elif start is None:
            return diff_specs(code, text)  # only what differs is typed
        end = start if end is None else end
        if not 0 <= start <= end <= len(code):
            raise AgentError(f"positions must satisfy 0 <= start <= end <= {len(code)}"
                             " (the cell's length in characters)")
        base = index_to_utf16(code, start)  # only what differs in that range is typed
        return [{**spec, "from": spec["from"] + base, "to": spec["to"] + base}
                for spec in diff_specs(code[start:end], text)]

    async def edit(self, cell_id: str, specs: list[dict]) -> None:
        await self.typist.type(cell_id, specs)

    async def suggest_edit(self, cell_id: str, specs: list[dict]) -> dict:
        """Propose `specs` as one suggestion: the span they cover, replaced (protocol
        "Suggestions"); the agent's cursor goes there, so people see where."""
        if not specs:
            raise AgentError("that is already the cell's code: nothing to suggest")
        code = self.code(cell_id)
        start, end = min(s["from"] for s in specs), max(s.get("to", s["from"]) for s in specs)
        after = ChangeSet.of(specs, utf16_len(code)).apply(code)
        new_end = end + utf16_len(after) - utf16_len(code)
        version = self.client.cells[cell_id].doc.version
        made = (await self.client.request({
            "type": "suggest", "cell_id": cell_id, "version": version, "from": start,
            "to": end, "insert": utf16_slice(after, start, new_end)}))["suggestion"]
        await self.client.cursor(cell_id, start)
        return made

    async def structure(self, ops: list[dict]) -> dict:
        return await self.client.cells_ops(ops)

    # ---- kernel ---------------------------------------------------------------------------

    def cell_outputs(self, cell_ids: list[str]) -> str:
        """Outputs, console text, errors and status of these cells, as text."""
        snapshot = self.outputs.snapshot(self.kernel_status)["outputs"]
        parts = []
        for cell_id in cell_ids:
            entry = snapshot.get(cell_id) or {}
            lines = [f"{self.label(cell_id)} [{entry.get('status', 'not run')}]"]
            for console in entry.get("console") or []:
                text = output_text(console).rstrip("\n")
                if text:
                    stream = console.get("channel", "stdout")
                    lines.append(f"{stream}:\n{_indent(text)}")
            output = entry.get("output")
            text = output_text(output)
            if text:
                kind = "error" if output.get("mimetype") == _ERROR else "output"
                lines.append(f"{kind}:\n{_indent(text)}")
            if len(lines) == 1:
                lines.append("(no output)")
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    def ui_elements(self) -> dict[str, tuple[str | None, object]]:
        """object id -> (element tag, current value) of the UI elements outputs show."""
        values = self.outputs.snapshot(self.kernel_status)["ui_values"]
        return {oid: (self.outputs.element_tag(oid), value) for oid, value in values.items()}


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))
