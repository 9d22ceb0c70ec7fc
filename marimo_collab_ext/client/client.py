"""CollabClient: joins a room and keeps each cell the way @codemirror/collab's peer side does."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ..ot import ChangeSet, Update
from ..ot.peer import PeerDocument
from ..persistence.text_diff import diff_specs


class CollabError(Exception):
    """An error response: `.code` is the protocol's error code, `.response` the whole message."""

    def __init__(self, response: dict) -> None:
        error = response.get("error") or {}
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.response = response


def ws_url(server_url: str, path: str, token_in_query: str | None = None) -> str:
    """The room socket URL of notebook `path` on a server (base URL included)."""
    parts = urlsplit(server_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    query = "path=" + quote(path, safe="")
    if token_in_query:
        query += "&token=" + quote(token_in_query, safe="")
    return urlunsplit((scheme, parts.netloc, base + "api/marimo-collab/ws", query, ""))


@dataclass
class ClientCell:
    cell_id: str
    doc: PeerDocument
    name: str = "_"
    config: dict = field(default_factory=dict)
    pushing: bool = False


class CollabClient:
    """One peer. `events` receives every broadcast; `cells` mirror the room's documents."""

    def __init__(self, url: str, headers: dict | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.peer_id = uuid.uuid4().hex
        self.ids = itertools.count(1)
        self.pending: dict[object, asyncio.Future] = {}
        self.events: asyncio.Queue = asyncio.Queue()
        self.listeners: list[Callable[[dict], None]] = []
        # (cell id, ChangeSet) for every change peers made to a local document: map positions
        self.doc_listeners: list[Callable[[str, ChangeSet], None]] = []
        self.join_fields: dict = {}  # sent in every join, e.g. {"role": "viewer", "agent": True}
        self.cells: dict[str, ClientCell] = {}
        self.order: list[str] = []
        self.structure_version = 0
        self.session: str | None = None
        self.join_response: dict = {}
        self.lost_text: dict[str, str] = {}  # unsent text when the session epoch changed
        self.stale_answers = 0
        self.ws = None
        self._reader: asyncio.Task | None = None
        self._push_tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    async def connect(cls, server_url: str, path: str, token: str | None = None,
                      join_fields: dict | None = None, **kwargs) -> CollabClient:
        """Connect and join; `token` goes into the Authorization header.

        `join_fields` are extra fields of every `join` (docs/protocol.md, "Agents and narrowed
        roles").
        """
        headers = {"Authorization": f"token {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        client = cls(ws_url(server_url, path), headers)
        client.join_fields = dict(join_fields or {})
        await client.open(**kwargs)
        return client

    async def open(self, **connect_kwargs) -> dict:
        self.ws = await ws_connect(self.url, additional_headers=self.headers,
                                   max_size=None, open_timeout=30, **connect_kwargs)
        self._reader = asyncio.ensure_future(self._read())
        return await self.join()

    async def join(self) -> dict:
        """Join (or re-join after a reconnect, catching up by versions when the epoch holds)."""
        message: dict = {**self.join_fields, "type": "join", "peer_id": self.peer_id}
        if self.session:
            message["session"] = self.session
            message["versions"] = {cid: c.doc.version for cid, c in self.cells.items()}
        response = await self.request(message)
        resumed = response["session"] == self.session
        if self.session and not resumed:
            for cid, cell in self.cells.items():  # never drop unconfirmed text silently
                if cell.doc.sendable():
                    self.lost_text[cid] = cell.doc.doc
        previous = self.cells if resumed else {}
        self.session = response["session"]
        self.join_response = response
        self.structure_version = response["notebook"]["structure_version"]
        self.cells, self.order = {}, []
        for info in response["notebook"]["cells"]:
            cid = info["id"]
            if "changes" in info and cid in previous:
                cell = previous[cid]
                for entry in info["changes"]:
                    self._receive(cell, entry["version"], entry["updates"])
            else:
                cell = ClientCell(cid, PeerDocument(info["code"], info["version"]))
            cell.name, cell.config, cell.pushing = info["name"], info["config"], False
            self.cells[cid] = cell
            self.order.append(cid)
        for cell in self.cells.values():
            self._schedule_push(cell)
        return response

    # ---- requests --------------------------------------------------------------------------

    async def request(self, message: dict, timeout: float = 60) -> dict:
        """Send a request and wait for its response; raises CollabError on an error answer."""
        message = dict(message)
        message.setdefault("id", next(self.ids))
        future = asyncio.get_running_loop().create_future()
        self.pending[message["id"]] = future
        await self.send(message)
        response = await asyncio.wait_for(future, timeout)
        if response.get("status") != "ok":
            raise CollabError(response)
        return response

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message, ensure_ascii=True))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._dispatch(json.loads(raw))
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            self.pending.clear()

    def _dispatch(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "response":
            future = self.pending.pop(message.get("in_reply"), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif message.get("in_reply") is None:
                self.events.put_nowait(message)
            return
        if kind == "change":
            cell = self.cells.get(message["document_id"])
            if cell is not None:
                self._receive(cell, message["version"], message["updates"])
        elif kind == "cells":
            self._apply_cells(message)
        for listener in list(self.listeners):
            listener(message)
        self.events.put_nowait(message)

    def _receive(self, cell: ClientCell, version: int, raw: list[dict]) -> None:
        """One `receive` per accepted push, as @codemirror/collab requires."""
        if version < cell.doc.version:
            return  # already have it (e.g. both a catch-up entry and a broadcast)
        if version > cell.doc.version:
            asyncio.ensure_future(self._catch_up(cell))
            return
        applied = cell.doc.receive([Update(ChangeSet.from_json(u["changes"]), u["clientID"])
                                    for u in raw])
        if applied is not None:
            for listener in list(self.doc_listeners):
                listener(cell.cell_id, applied)
        self._schedule_push(cell)

    async def _catch_up(self, cell: ClientCell) -> None:
        response = await self.request({"type": "pull", "document_id": cell.cell_id,
                                       "version": cell.doc.version})
        for entry in response["changes"]:
            self._receive(cell, entry["version"], entry["updates"])

    def _apply_cells(self, message: dict) -> None:
        self.structure_version = message["structure_version"]
        for op in message["ops"]:
            kind, cid = op["op"], op["cell_id"]
            if kind == "create":
                self.cells[cid] = ClientCell(cid, PeerDocument(op["code"], 0), op["name"],
                                             op["config"])
                index = 0 if op["after"] is None else self.order.index(op["after"]) + 1
                self.order.insert(index, cid)
            elif kind == "delete":
                self.cells.pop(cid, None)
                self.order.remove(cid)
            elif kind == "move":
                self.order.remove(cid)
                index = 0 if op["after"] is None else self.order.index(op["after"]) + 1
                self.order.insert(index, cid)
            elif kind == "rename":
                self.cells[cid].name = op["name"]
            elif kind == "config":
                self.cells[cid].config = op["config"]

    # ---- editing ---------------------------------------------------------------------------

    def text(self, cell_id: str) -> str:
        return self.cells[cell_id].doc.doc

    def edit(self, cell_id: str, specs: list[dict] | dict) -> ChangeSet:
        """Make a local change (positions in UTF-16 units of the current text) and push it."""
        cell = self.cells[cell_id]
        changes = ChangeSet.of(specs, cell.doc.length)
        cell.doc.local_change(changes)
        self._schedule_push(cell)
        return changes

    def _schedule_push(self, cell: ClientCell) -> None:
        if cell.pushing or not cell.doc.sendable() or self.ws is None:
            return
        cell.pushing = True
        self._idle.clear()
        task = asyncio.ensure_future(self._push(cell))
        self._push_tasks.add(task)
        task.add_done_callback(self._push_done)

    def _push_done(self, task: asyncio.Task) -> None:
        self._push_tasks.discard(task)
        if not self._push_tasks:
            self._idle.set()

    async def _push(self, cell: ClientCell) -> None:
        """One push in flight per cell: sendable updates with the synced version read together."""
        try:
            while cell.doc.sendable() and self.cells.get(cell.cell_id) is cell:
                updates = cell.doc.sendable()
                message = {"type": "change", "document_id": cell.cell_id,
                           "version": cell.doc.version,
                           "updates": [{"clientID": u.client_id, "changes": u.changes.to_json()}
                                       for u in updates]}
                try:
                    await self.request(message)
                except CollabError as exc:
                    if exc.code != "stale":
                        raise
                    self.stale_answers += 1
                    if exc.response.get("gone"):
                        return  # the caller re-joins (see `reconnect`)
                    await self._catch_up(cell)
        except (ConnectionError, ConnectionClosed, asyncio.CancelledError):
            return  # unconfirmed updates stay in the document; `reconnect` pushes them
        finally:
            cell.pushing = False

    async def flush(self, timeout: float = 30) -> None:
        """Wait until every local change is confirmed by the server."""
        async def settled() -> None:
            while any(c.doc.sendable() for c in self.cells.values()) or self._push_tasks:
                await self._idle.wait()
                await asyncio.sleep(0)
                for cell in self.cells.values():
                    self._schedule_push(cell)
        await asyncio.wait_for(settled(), timeout)

    # ---- other requests --------------------------------------------------------------------

    async def cells_ops(self, ops: list[dict]) -> dict:
        return await self.request({"type": "cells", "structure_version": self.structure_version,
                                   "ops": ops})

    async def save(self) -> dict:
        return await self.request({"type": "save"})

    async def run(self, cell_ids: list[str]) -> dict:
        return await self.request({"type": "run", "cell_ids": cell_ids})

    async def set_ui_value(self, object_id: str, value) -> dict:
        return await self.request({"type": "set_ui_value", "object_id": object_id,
                                   "value": value})

    # ---- history and suggestions (docs/protocol.md) ----------------------------------------

    async def cell_history(self, cell_id: str, version: int | None = None) -> dict:
        """A cell's versions with author, time and diff; with `version`, also its `code`."""
        message = {"type": "cell_history", "cell_id": cell_id}
        if version is not None:
            message["version"] = version
        return await self.request(message)

    async def blame(self, cell_id: str) -> list[dict | None]:
        """Who last wrote each line of a cell (None: before the kept history)."""
        return (await self.request({"type": "blame", "cell_id": cell_id}))["lines"]

    async def restore_cell(self, cell_id: str, version: int) -> None:
        """Make a cell's text what it was at `version`: an edit of ours, like any other."""
        code = (await self.cell_history(cell_id, version))["code"]
        specs = diff_specs(self.text(cell_id), code)
        if specs:
            self.edit(cell_id, specs)
            await self.flush()

    async def restore_notebook(self, at: float) -> dict:
        return await self.request({"type": "restore_notebook", "at": at})

    async def suggest(self, cell_id: str, start: int, end: int, text: str) -> dict:
        """Suggest replacing UTF-16 [start, end) of the cell's confirmed text with `text`."""
        return (await self.request({
            "type": "suggest", "cell_id": cell_id, "version": self.cells[cell_id].doc.version,
            "from": start, "to": end, "insert": text}))["suggestion"]

    async def accept_suggestion(self, suggestion_id: str) -> dict:
        return await self.request({"type": "accept_suggestion", "suggestion_id": suggestion_id})

    async def reject_suggestion(self, suggestion_id: str) -> dict:
        return await self.request({"type": "reject_suggestion", "suggestion_id": suggestion_id})

    async def cursor(self, cell_id: str, anchor: int, head: int | None = None) -> None:
        await self.send({"type": "cursor", "document_id": cell_id,
                         "version": self.cells[cell_id].doc.version, "anchor": anchor,
                         "head": anchor if head is None else head})

    async def next_event(self, predicate: Callable[[dict], bool], timeout: float = 30) -> dict:
        """The next broadcast matching `predicate` (others are dropped)."""
        async def wait() -> dict:
            while True:
                event = await self.events.get()
                if predicate(event):
                    return event
        return await asyncio.wait_for(wait(), timeout)

    async def reconnect(self) -> dict:
        """Drop the socket and join again, keeping unconfirmed edits (pushed after catch-up)."""
        await self.close()
        self.ws = await ws_connect(self.url, additional_headers=self.headers, max_size=None)
        self._reader = asyncio.ensure_future(self._read())
        return await self.join()

    async def wait_closed(self) -> None:
        """Return once the socket has closed (server gone, network lost, or `close`).

        Long-running clients (CLI `watch`, `mirror`) await it to know when to `reconnect`.
        """
        if self._reader is not None:
            # wait(), not await: a cancelled waiter must not stop the reader, and an
            # abnormal close (ConnectionClosedError) is an answer here, not an error
            await asyncio.wait({self._reader})

    async def close(self) -> None:
        for task in list(self._push_tasks):
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self.ws = None
