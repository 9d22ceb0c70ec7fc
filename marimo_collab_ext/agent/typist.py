"""Typing into a shared cell at a pace people can follow, over their concurrent edits.

An edit is a list of hunks (replace [from, to) with text) in the cell's text as the agent
last saw it. Each hunk is deleted at once, then typed a word at a time with the agent's
cursor where it types. Every position still to be used is mapped over the changes peers make
in the meantime, so what they type is never overwritten: both edits end up in the cell.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from ..client import CollabClient
from ..ot import ChangeSet

# A word with the whitespace after it, or a run of whitespace (indentation, blank lines).
_CHUNK = re.compile(r"\S+\s*|\s+")


class CellGone(LookupError):
    """A peer deleted the cell being typed into."""


@dataclass
class _Hunk:
    start: int  # UTF-16 positions in the local document, kept mapped
    end: int
    text: str


class Typist:
    """Types hunks into one client's cells; `delay` seconds between words (0: all at once)."""

    def __init__(self, client: CollabClient, delay: float) -> None:
        self.client = client
        self.delay = delay

    async def type(self, cell_id: str, specs: list[dict]) -> None:
        """Apply `{"from", "to", "insert"}` specs (ascending, UTF-16) as typing; wait for the ok."""
        hunks = [_Hunk(s["from"], s.get("to", s["from"]), s.get("insert", "")) for s in specs]

        def peers_changed(changed_cell: str, changes: ChangeSet) -> None:
            if changed_cell != cell_id:
                return
            for hunk in hunks:
                # Text a peer inserts at either edge of a hunk stays outside it: never deleted,
                # and the agent's words keep together (the caret keeps before such text).
                start = changes.map_pos(hunk.start, -1 if hunk.start == hunk.end else 1)
                hunk.start, hunk.end = start, max(start, changes.map_pos(hunk.end, -1))

        self.client.doc_listeners.append(peers_changed)
        try:
            for index, hunk in enumerate(hunks):
                if hunk.end > hunk.start:
                    self._local(cell_id, {"from": hunk.start, "to": hunk.end}, hunks[index:])
                chunks = _CHUNK.findall(hunk.text) if self.delay > 0 else [hunk.text]
                for chunk in filter(None, chunks):
                    self._local(cell_id, {"from": hunk.start, "insert": chunk}, hunks[index:])
                    if self.delay > 0:
                        await self._show(cell_id, hunk)
                        await asyncio.sleep(self.delay)
            await self.client.flush()
            if hunks:
                await self._show(cell_id, hunks[-1])
        finally:
            self.client.doc_listeners.remove(peers_changed)

    def _local(self, cell_id: str, spec: dict, pending: list[_Hunk]) -> None:
        if cell_id not in self.client.cells:
            raise CellGone(f"cell {cell_id} was deleted while the agent was typing in it")
        changes = self.client.edit(cell_id, spec)
        for hunk in pending:  # the caret moves past what it typed
            hunk.start = changes.map_pos(hunk.start, 1)
            hunk.end = max(hunk.start, changes.map_pos(hunk.end, 1))

    async def _show(self, cell_id: str, hunk: _Hunk) -> None:
        # Confirmed first, so the cursor's version and position agree with the server's text.
        await self.client.flush()
        if cell_id in self.client.cells:
            await self.client.cursor(cell_id, hunk.start)
