"""PeerDocument: the peer side of @codemirror/collab, for clients without CodeMirror.

Holds the document, the synced version and the unconfirmed local updates.
"""

from __future__ import annotations

import uuid

from .changeset import ChangeSet
from .rebase import Update
from .text import utf16_len

__all__ = ["PeerDocument"]


class PeerDocument:
    """One peer's copy of one document, kept in step with the authority like ``collab()``.

    Pure: the caller sends ``sendable()`` and feeds every accepted push to ``receive``.
    """

    def __init__(self, doc: str = "", version: int = 0, client_id: str | None = None) -> None:
        self.doc = doc
        self.version = version
        # A reused clientID diverges peers: each instance gets a fresh one.
        self.client_id = client_id if client_id is not None else uuid.uuid4().hex
        self._unconfirmed: list[Update] = []

    @property
    def length(self) -> int:
        """Length of the local document in UTF-16 units.

        Change sets for ``local_change`` must have this length.
        """
        return utf16_len(self.doc)

    def local_change(self, changes: ChangeSet, keep_empty: bool = False) -> None:
        """Apply a local edit and record it as unconfirmed (an empty one only with ``keep_empty``).

        Raises ValueError when ``changes`` does not fit the local document.
        """
        self.doc = changes.apply(self.doc)
        # collab() records an update without changes only when it carries shared effects.
        if keep_empty or not changes.empty:
            self._unconfirmed.append(Update(changes, self.client_id))

    def sendable(self) -> list[Update]:
        """The local updates the authority has not confirmed yet, oldest first.

        Push them (or a prefix) together with ``version`` read at the same moment.
        """
        return list(self._unconfirmed)

    def receive(self, updates: list[Update]) -> ChangeSet | None:
        """Take one accepted push from the authority (collab's ``receiveUpdates``).

        Own updates are confirmed by clientID; others are applied over the unconfirmed ones.
        Returns what changed in the local document (None: nothing), to map positions kept on it.
        """
        unconfirmed = self._unconfirmed
        changes: ChangeSet | None = None
        own = 0
        for update in updates:
            ours = unconfirmed[own] if own < len(unconfirmed) else None
            if ours is not None and ours.client_id == update.client_id:
                if changes is not None:
                    changes = changes.map(ours.changes, True)
                own += 1
            else:
                changes = update.changes if changes is None else changes.compose(update.changes)
        if own:
            unconfirmed = unconfirmed[own:]
        if unconfirmed and changes is not None:
            rebased = []
            for update in unconfirmed:
                mapped = update.changes.map(changes)
                changes = changes.map(update.changes, True)
                rebased.append(Update(mapped, self.client_id))
            unconfirmed = rebased
        # Compute everything first, so a bad push leaves this peer unchanged.
        doc = changes.apply(self.doc) if changes is not None else self.doc
        self.doc = doc
        self.version += len(updates)
        self._unconfirmed = unconfirmed
        return changes
