"""A cell's past versions, their diffs and line blame, stepped back from its current text (pure).

Each journaled push keeps the change that undoes it (persistence.journal `edits`, within the
`history_bytes` budget): starting from the cell's text now, undoing pushes newest first gives
every earlier version, back to the first push whose undo is gone or missing ("the window").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass

from ..ot import ChangeSet
from ..persistence.journal import EditRecord


@dataclass(frozen=True)
class Step:
    """One push within the window: the cell's text before and after it."""

    record: EditRecord
    before: str
    after: str


def steps_back(doc: str, version: int, records: list[EditRecord]) -> Iterator[Step]:
    """Pushes newest first with the text around each, while the chain of undos holds.

    `records` are the cell's authorship records, newest first (Journal.edits).
    """
    for record in records:
        if record.undo is None or record.version_after != version:
            return  # dropped by the budget, or a gap: the window ends here
        try:
            before = ChangeSet.from_json(record.undo).apply(doc)
        except ValueError:
            return  # not this text's undo (cannot happen in one epoch): stop, never guess
        yield Step(record, before, doc)
        doc, version = before, record.version


def describe(step: Step) -> dict:
    r = step.record
    return {"version": r.version, "to_version": r.version_after, "username": r.username,
            "at": r.at, "suggested_by": r.suggested_by, "diff": line_diff(step.before, step.after)}


def line_diff(before: str, after: str) -> str:
    """A unified diff of two texts, without file headers, one line of context."""
    lines = difflib.unified_diff(before.split("\n"), after.split("\n"), n=1, lineterm="")
    return "\n".join(list(lines)[2:])


def blame(doc: str, steps: Iterator[Step]) -> list[Step | None]:
    """For each line of `doc`, the push that last wrote it, or None: older than the window.

    Walks back: a line a push's diff does not keep from before it was written by that push.
    """
    lines = doc.split("\n")
    owner: list[Step | None] = [None] * len(lines)
    where: list[int | None] = list(range(len(lines)))  # each open line's index in the text
    for step in steps:
        before, after = step.before.split("\n"), step.after.split("\n")
        kept: dict[int, int] = {}
        matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for a, b, size in matcher.get_matching_blocks():
            for k in range(size):
                kept[b + k] = a + k
        for line, index in enumerate(where):
            if index is None:
                continue
            if index in kept:
                where[line] = kept[index]
            else:
                owner[line], where[line] = step, None
        if all(index is None for index in where):
            break
    return owner
