"""Broadcasts as one-line reports: who came and went, who edited what, kernel status, saves.

Used by `watch` (everything) and `mirror` (the same, so its event queue is always drained).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..client import CollabClient
from ..ot import ChangeSet


def stamp(text: str) -> str:
    """A report line with the local time in front."""
    return time.strftime("%H:%M:%S ") + text


class Reporter:
    """Turns one client's broadcasts into lines for `out`; `describe(event)` is the pure part.

    `edits=False` leaves out per-keystroke edit lines (the mirror reports its own writes).
    """

    def __init__(self, client: CollabClient, out: Callable[[str], None],
                 edits: bool = True) -> None:
        self.client = client
        self.out = out
        self.edits = edits
        self.names: dict[str, str] = {}
        # The change broadcast does not say who made it: the peer whose cursor was last in
        # that cell is the best guess (clientIDs are per editor, not per peer).
        self.cursor_in: dict[str, str] = {}
        self.learn_peers()

    def learn_peers(self) -> None:
        """Names of the peers in the join response (call again after a reconnect)."""
        response = self.client.join_response
        for peer in response.get("peers", []) + [response.get("self") or {}]:
            if peer.get("peer_id"):
                self.names[peer["peer_id"]] = _user_name(peer)

    def greeting(self, path: str) -> str:
        response = self.client.join_response
        me = response.get("self") or {}
        peers = [self.names.get(p["peer_id"], "?") for p in response.get("peers", [])
                 if p.get("peer_id") != self.client.peer_id]
        kernel = (response.get("kernel") or {}).get("status", "none")
        return (f"joined {path} as {_user_name(me)} ({me.get('role', '?')}):"
                f" {len(self.client.order)} cells, kernel {kernel}, peers: "
                + (", ".join(peers) or "none"))

    async def pump(self) -> None:
        """Drain the client's event queue forever, printing what matters."""
        while True:
            event = await self.client.events.get()
            line = self.describe(event)
            if line:
                self.out(stamp(line))

    def describe(self, event: dict) -> str | None:
        kind = event.get("type")
        if kind == "presence":
            peer = event.get("peer") or {}
            name = _user_name(peer)
            if peer.get("peer_id"):
                self.names[peer["peer_id"]] = name
            verb = {"join": "joined", "leave": "left", "update": "is now"}.get(event.get("event"))
            return f"{name} {verb}" + (f" {peer.get('role')}" if verb == "is now" else
                                       f" ({peer.get('role', '?')})")
        if kind == "cursor":
            if event.get("document_id") and event.get("peer_id"):
                self.cursor_in[event["document_id"]] = event["peer_id"]
            return None
        if kind == "change":
            return self._describe_change(event) if self.edits else None
        if kind == "cells":
            who = self.names.get(event.get("peer_id"), "someone")
            ops = ", ".join(f"{op['op']} {self._cell(op.get('cell_id'))}"
                            for op in event.get("ops", []))
            return f"{who}: cells {ops}"
        if kind == "kernel_status":
            message = event.get("message")
            return f"kernel {event.get('status')}" + (f": {message}" if message else "")
        if kind == "kernel" and event.get("op") == "completed-run":
            return "kernel run completed"
        if kind == "saved":
            return f"saved (hash {str(event.get('hash'))[:12]})"
        if kind == "save_failed":
            return f"SAVE FAILED: {event.get('message')}"
        if kind == "file_status":
            return f"file {event.get('status')}: {event.get('message', '')}".rstrip(": ")
        if kind == "response" and event.get("status") == "error":
            return f"server error: {(event.get('error') or {}).get('message')}"
        return None

    def _describe_change(self, event: dict) -> str:
        cell_id = event.get("document_id")
        inserted = deleted = 0
        client_ids = set()
        for update in event.get("updates", []):
            client_ids.add(update.get("clientID"))
            try:
                changes = ChangeSet.from_json(update.get("changes"))
            except ValueError:
                continue
            for from_a, to_a, from_b, to_b, _text in changes.iter_changes():
                deleted += to_a - from_a
                inserted += to_b - from_b
        return (f"{self._who(cell_id, client_ids)} edited {self._cell(cell_id)}:"
                f" +{inserted} -{deleted}")

    def _who(self, cell_id: str, client_ids: set) -> str:
        if client_ids == {"server"}:
            return "the file on the server"
        mine = self.client.cells.get(cell_id)
        if mine is not None and client_ids == {mine.doc.client_id}:
            return "you"
        peer = self.cursor_in.get(cell_id)
        return self.names.get(peer, "a peer") if peer else "a peer"

    def _cell(self, cell_id: str | None) -> str:
        try:
            return f"cell #{self.client.order.index(cell_id) + 1} ({cell_id})"
        except ValueError:
            return f"cell {cell_id}"


def _user_name(peer: dict) -> str:
    user = peer.get("user") or {}
    return str(user.get("display_name") or user.get("name") or user.get("username") or "?")
