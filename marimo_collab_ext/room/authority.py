"""CellAuthority: the central @codemirror/collab authority for one cell's source.

Pure value: no I/O. Follows docs/protocol.md, "Editing a cell": history of pushes,
stale pushes rebased over the missed pushes one push at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ot import ChangeSet, Update, rebase_updates
from ..ot.text import utf16_len
from .errors import BadRequest, InvalidChange, Stale

__all__ = ["UPDATE_OVERHEAD", "CellAuthority", "Push", "PushResult"]

# What an update costs beyond its text, in UTF-16 units (objects, clientID, list slots): so
# a flood of tiny updates weighs on the history's bound as well as a few large ones.
UPDATE_OVERHEAD = 64


@dataclass(frozen=True)
class Push:
    """The updates of one accepted ``change`` request, made at ``version``.

    Peers call ``receiveUpdates`` once per push, so the history keeps this grouping.
    """

    version: int
    updates: tuple[Update, ...]
    units: int = field(default=0, compare=False)  # its weight in the history (history_units)
    stamp: int = field(default=0, compare=False)  # the caller's ordering key (oldest first)


@dataclass(frozen=True)
class PushResult:
    """What ``CellAuthority.push`` took: the updates as applied and the versions around them.

    ``accepted`` is empty when the push held only duplicates (or nothing).
    """

    accepted: list[Update]
    version_before: int
    version_after: int


class CellAuthority:
    """Authority for one cell: current text, version, and the recent history of pushes.

    ``push`` validates, rebases and applies a batch atomically; ``since`` serves pulls.
    The history holds at most ``max_history`` pushes weighing at most ``max_history_units``
    (inserted text plus UPDATE_OVERHEAD per update), so deleted text does not pile up.
    """

    def __init__(self, doc: str = "", version: int = 0, max_history: int = 1000,
                 max_history_units: int | None = None) -> None:
        if type(version) is not int or version < 0:
            raise ValueError("version must be a non-negative integer")
        if type(max_history) is not int or max_history < 0:
            raise ValueError("max_history must be a non-negative integer")
        if max_history_units is not None and (
            type(max_history_units) is not int or max_history_units < 0
        ):
            raise ValueError("max_history_units must be a non-negative integer or None")
        self.doc = doc
        self.version = version
        self.length = utf16_len(doc)
        self.max_history = max_history
        self.max_history_units = max_history_units
        self.history_units = 0  # total weight of the pushes held
        self._pushes: list[Push] = []
        # Version -> (index of the first push made after it, doc length at it), for every
        # push boundary still held; the current version maps to (len(_pushes), length).
        self._base_index = 0  # absolute index of _pushes[0], so compaction keeps indices
        self._boundaries: dict[int, tuple[int, int]] = {version: (0, self.length)}

    @property
    def oldest_version(self) -> int:
        """The oldest version a push or pull may still name.

        Older ones are answered ``stale`` with ``gone``.
        """
        return self._pushes[0].version if self._pushes else self.version

    def _boundary(self, version: object) -> tuple[int, int]:
        if type(version) is not int or version < 0:
            raise BadRequest("`version` must be a non-negative integer")
        if version > self.version:
            raise BadRequest(f"version {version} is ahead of the server's ({self.version})")
        if version < self.oldest_version:
            raise Stale(f"the history before version {version} is gone; re-join", gone=True)
        found = self._boundaries.get(version)
        if found is None:
            raise BadRequest(f"version {version} is not a push boundary")
        return found[0] - self._base_index, found[1]

    @property
    def oldest_stamp(self) -> int | None:
        """The ``stamp`` of the oldest push held, or None when the history is empty."""
        return self._pushes[0].stamp if self._pushes else None

    def since(self, version: int) -> list[Push]:
        """Every push accepted after ``version``, in order (a ``pull``).

        ``version`` must be a held push boundary (BadRequest, or Stale with gone).
        """
        index, _ = self._boundary(version)
        return self._pushes[index:]

    def push(self, version: int, updates: list[Update], stamp: int = 0) -> PushResult:
        """Take a client's push made at ``version``: all of it or none of it.

        ``stamp`` is kept with the push (see ``oldest_stamp``). Raises BadRequest,
        InvalidChange or Stale (see docs/protocol.md, "Editing a cell").
        """
        index, length = self._boundary(version)
        if type(updates) not in (list, tuple) or not all(type(u) is Update for u in updates):
            raise BadRequest("`updates` must be a list of updates")
        for update in updates:
            if type(update.client_id) is not str or not isinstance(update.changes, ChangeSet):
                raise BadRequest("an update needs a ChangeSet and a string clientID")
            # The chain check comes first: CodeMirror's map loops on mismatched lengths.
            if update.changes.length != length:
                raise InvalidChange(
                    f"change set is for a document of length {update.changes.length},"
                    f" expected {length}"
                )
            length = update.changes.new_length
        pending = list(updates)
        for missed in self._pushes[index:]:
            if not pending:
                break
            _check_duplicates(pending, missed)
            try:
                pending = rebase_updates(pending, list(missed.updates))
            except ValueError as exc:  # unreachable after the checks; never half-apply
                raise InvalidChange(f"cannot rebase the push: {exc}") from None
        before = self.version
        if not pending:
            return PushResult([], before, before)
        doc = self.doc
        try:
            for update in pending:
                doc = update.changes.apply(doc)
        except ValueError as exc:
            raise InvalidChange(f"change does not fit the document: {exc}") from None
        self.doc = doc
        self.length = pending[-1].changes.new_length
        units = sum(u.changes.weight + UPDATE_OVERHEAD for u in pending)
        self._pushes.append(Push(before, tuple(pending), units, stamp))
        self.history_units += units
        self.version = before + len(pending)
        self._boundaries[self.version] = (
            self._base_index + len(self._pushes),
            self.length,
        )
        if len(self._pushes) > self.max_history:
            self.compact(self.max_history)
        if self.max_history_units is not None:
            self.compact_units(self.max_history_units)
        return PushResult(pending, before, self.version)

    def compact_units(self, max_units: int) -> None:
        """Forget the oldest pushes until the history weighs at most ``max_units``."""
        keep, units = len(self._pushes), self.history_units
        while keep and units > max_units:
            units -= self._pushes[len(self._pushes) - keep].units
            keep -= 1
        self.compact(keep)

    def drop_oldest(self) -> None:
        """Forget the oldest push held (the room's bound on all its cells' history)."""
        self.compact(max(len(self._pushes) - 1, 0))

    def compact(self, keep: int) -> None:
        """Forget all but the last ``keep`` pushes (pushes and pulls older than that go stale).

        ``push`` calls it itself to keep the history within ``max_history``.
        """
        if type(keep) is not int or keep < 0:
            raise ValueError("keep must be a non-negative integer")
        drop = len(self._pushes) - keep
        if drop <= 0:
            return
        self.history_units -= sum(p.units for p in self._pushes[:drop])
        self._pushes = self._pushes[drop:]
        self._base_index += drop
        oldest = self.oldest_version
        self._boundaries = {v: b for v, b in self._boundaries.items() if v >= oldest}


def _check_duplicates(pending: list[Update], missed: Push) -> None:
    # rebase_updates skips, by clientID alone, the pending updates this push already
    # holds. An honest client re-sends exactly what was taken (rebased the same way), so
    # anything else is another editor reusing the clientID: refuse it (docs/protocol.md).
    skip = 0
    foreign_before = False
    for accepted in missed.updates:
        ours = pending[skip] if skip < len(pending) else None
        if ours is not None and ours.client_id == accepted.client_id:
            if not foreign_before and ours.changes != accepted.changes:
                raise InvalidChange(
                    f"update from clientID {ours.client_id!r} differs from the one already"
                    " accepted from it (a reused clientID?)"
                )
            skip += 1
        else:
            foreign_before = True
