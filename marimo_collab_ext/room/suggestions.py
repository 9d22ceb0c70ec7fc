"""Pending suggestions of a room: proposed edits nobody has accepted yet (pure, no I/O).

A suggestion replaces the UTF-16 range [from, to) of a cell ("edit") or adds a cell after
another ("cell"). Its range always refers to the cell's current text: every accepted push
moves it, and a push that touches the text it replaces makes it outdated (docs/protocol.md,
"Suggestions").
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field

from ..ot import ChangeSet

KINDS = ("edit", "cell")


@dataclass
class Suggestion:
    id: str
    kind: str  # "edit" or "cell"
    insert: str  # the proposed text (kind "cell": the new cell's code)
    author: dict  # peer_id, username, display_name, agent of who suggested it
    at: float
    cell_id: str | None = None  # kind "edit": the cell it changes
    start: int = 0  # kind "edit": [start, end) in UTF-16 units of the cell's current text
    end: int = 0
    replaced: str = ""  # kind "edit": the text [start, end) held when it was suggested
    after: str | None = None  # kind "cell": the cell it goes after (None: the top)
    name: str = "_"  # kind "cell": the new cell's name
    units: int = field(default=0, repr=False)  # its size, counted against the room's limit

    def to_wire(self) -> dict:
        wire = {"id": self.id, "kind": self.kind, "insert": self.insert, "author": self.author,
                "at": self.at}
        if self.kind == "edit":
            wire.update({"cell_id": self.cell_id, "from": self.start, "to": self.end,
                         "replaced": self.replaced})
        else:
            wire.update({"after": self.after, "name": self.name})
        return wire

    def to_json(self) -> dict:
        """How the journal and the snapshot store it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Suggestion:
        return cls(**data)


class Suggestions:
    """The pending suggestions of one room, in the order they were made."""

    def __init__(self) -> None:
        self.pending: dict[str, Suggestion] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def new_id(self) -> str:
        while True:
            sid = "s" + secrets.token_hex(6)
            if sid not in self.pending:
                return sid

    def add(self, suggestion: Suggestion) -> None:
        self.pending[suggestion.id] = suggestion

    def pop(self, sid: str) -> Suggestion | None:
        return self.pending.pop(sid, None)

    def describe(self) -> list[dict]:
        return [s.to_wire() for s in self.pending.values()]

    def map_through(self, cell_id: str, changes: ChangeSet) -> list[Suggestion]:
        """Move the suggestions on `cell_id` over an accepted change; returns (and drops) the
        ones it outdates: those whose replaced text it touched."""
        outdated = []
        for suggestion in list(self.pending.values()):
            if suggestion.kind != "edit" or suggestion.cell_id != cell_id:
                continue
            moved = map_range(changes, suggestion.start, suggestion.end)
            if moved is None:
                outdated.append(self.pending.pop(suggestion.id))
            else:
                suggestion.start, suggestion.end = moved
        return outdated

    def drop_cells(self, deleted: list[str]) -> list[Suggestion]:
        """Outdate the suggestions on, or to go after, deleted cells."""
        gone = set(deleted)
        outdated = [s for s in self.pending.values()
                    if (s.kind == "edit" and s.cell_id in gone)
                    or (s.kind == "cell" and s.after in gone)]
        for suggestion in outdated:
            del self.pending[suggestion.id]
        return outdated


def map_range(changes: ChangeSet, start: int, end: int) -> tuple[int, int] | None:
    """[start, end) moved over `changes`, or None when a change touches the text in it.

    Insertions right at either edge stay outside the range; an empty range (a pure insert)
    is outdated only by a change that deletes across it.
    """
    for from_a, to_a, _, _, _ in changes.iter_changes():
        if start < end and from_a < end and to_a > start:
            return None
        if start == end and from_a < start < to_a:
            return None
    if start == end:
        pos = changes.map_pos(start, 1)
        return pos, pos
    return changes.map_pos(start, 1), changes.map_pos(end, -1)
