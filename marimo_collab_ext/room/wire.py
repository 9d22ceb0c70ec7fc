"""Turning untrusted `change` payloads into validated updates (protocol: "Editing a cell")."""

from __future__ import annotations

from ..ot import ChangeSet, Update
from .errors import BadRequest, InvalidChange

SERVER_CLIENT_ID = "server"


def parse_updates(raw: object, length: int) -> list[Update]:
    """Validate the `updates` of a `change` request whose first update applies to `length` units.

    Accepts ChangeSet JSON or, for clients without CodeMirror, a list of `{from, to, insert}`
    specs in the document at the previous update's result. Checks the length chain.
    """
    if not isinstance(raw, list):
        raise BadRequest("`updates` must be a list")
    updates = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("each update must be an object")
        client_id = item.get("clientID")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 128:
            raise BadRequest("`clientID` must be a non-empty string of at most 128 characters")
        if client_id == SERVER_CLIENT_ID:
            raise BadRequest("clientID 'server' is reserved for the server's own changes")
        changes = item.get("changes")
        try:
            if _is_specs(changes):
                changeset = ChangeSet.of(changes, length)
            else:
                changeset = ChangeSet.from_json(changes)
        except ValueError as exc:
            raise InvalidChange(f"invalid change set: {exc}") from None
        if changeset.length != length:
            raise InvalidChange(
                f"change set is for a document of length {changeset.length},"
                f" expected {length}"
            )
        length = changeset.new_length
        updates.append(Update(changeset, client_id))
    return updates


def _is_specs(changes: object) -> bool:
    return isinstance(changes, list) and bool(changes) and all(
        isinstance(spec, dict) for spec in changes
    )


def updates_to_json(updates: list[Update]) -> list[dict]:
    """The server's own, normalised JSON form of accepted updates."""
    return [update.to_json() for update in updates]


def updates_from_json(raw: list[dict]) -> list[Update]:
    """Updates the server itself wrote (journal replay); still strictly parsed."""
    return [Update.from_json(update) for update in raw]
