"""Updates and rebaseUpdates: a Python port of @codemirror/collab 6.1's authority helper.

An update is one client's change set, tagged with the client's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .changeset import ChangeSet

__all__ = ["Update", "rebase_updates"]


@dataclass(frozen=True)
class Update:
    """One change set made by one client (CodeMirror collab's ``Update``).

    ``client_id`` tells the authority and peers which updates are their own.
    """

    changes: ChangeSet
    client_id: str

    @classmethod
    def from_json(cls, value: Any) -> Update:
        """Parse a wire update ``{"clientID": str, "changes": <ChangeSet JSON>}`` strictly.

        Raises ValueError for anything else.
        """
        if type(value) is not dict:
            raise ValueError("An update must be an object")
        client_id = value.get("clientID")
        if type(client_id) is not str or not client_id:
            raise ValueError("An update needs a non-empty string clientID")
        return cls(ChangeSet.from_json(value.get("changes")), client_id)

    def to_json(self) -> dict[str, Any]:
        """The wire form, with the normalised ChangeSet JSON.

        Inverse of ``from_json``.
        """
        return {"clientID": self.client_id, "changes": self.changes.to_json()}


def rebase_updates(updates: list[Update], over: list[Update]) -> list[Update]:
    """Drop already-accepted updates and move the rest over ``over`` (collab's rebaseUpdates).

    ``over`` are the updates accepted since the version ``updates`` were made at.
    """
    if not over or not updates:
        return list(updates)
    _check_chain(over, "over")
    _check_chain(updates, "updates")
    if updates[0].changes.length != over[0].changes.length:
        raise ValueError("Updates and the updates they are rebased over start at different lengths")
    changes: ChangeSet | None = None
    skip = 0
    for update in over:
        other = updates[skip] if skip < len(updates) else None
        if other is not None and other.client_id == update.client_id:
            if changes is not None:
                changes = changes.map_desc(other.changes, True)
            skip += 1
        else:
            changes = update.changes if changes is None else changes.compose_desc(update.changes)
    if skip:
        updates = updates[skip:]
    if changes is None:
        return list(updates)
    result = []
    for update in updates:
        mapped = update.changes.map(changes)
        changes = changes.map_desc(update.changes, True)
        result.append(Update(mapped, update.client_id))
    return result


def _check_chain(updates: list[Update], what: str) -> None:
    # CodeMirror's map loops forever on mismatched lengths; refuse them up front.
    for prev, nxt in zip(updates, updates[1:], strict=False):
        if prev.changes.new_length != nxt.changes.length:
            raise ValueError(f"The {what} do not follow each other (lengths do not chain)")
