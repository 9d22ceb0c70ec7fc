"""A cell's past versions, their diffs and line blame, stepped back from its current text (pure).

Each journaled push keeps the change that undoes it (persistence.journal `edits`, within the
`history_bytes` budget): starting from the cell's text now, undoing pushes newest first gives
every earlier version, back to the first push whose undo is gone or missing ("the window").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from ..ot import ChangeSet
from ..ot.text import utf16_len, utf16_to_index
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


def history_window(doc: str, version: int, records: list[EditRecord], budget: int,
                   want: int | None) -> dict:
    """The `cell_history` answer: versions newest first until `budget` bytes of diffs, the
    oldest version the window reaches, and the text at version `want` if it does. Streams the
    steps: only one version's text is held at a time, besides the one asked for."""
    versions, oldest = [], version
    code = doc if want == version else None
    cut = False
    for step in steps_back(doc, version, records):
        oldest = step.record.version
        if oldest == want:
            code = step.before
        if not cut:
            entry = describe(step)
            budget -= len(entry["diff"]) + 200
            cut = budget < 0
            if not cut:
                versions.append(entry)
    answer = {"version": version, "oldest_version": oldest,
              # whether the window reaches the cell's first version, all of it answered
              "complete": oldest == 0 and not cut, "versions": versions[::-1]}
    if code is not None:
        answer["code"] = code
    return answer


def describe(step: Step) -> dict:
    r = step.record
    return {"version": r.version, "to_version": r.version_after, "username": r.username,
            "at": r.at, "suggested_by": r.suggested_by,
            "diff": line_diff(step.before, step.after, ChangeSet.from_json(r.undo))}


def line_diff(before: str, after: str, undo: ChangeSet) -> str:
    """Unified-diff hunks (no file headers, no context) of the whole lines a push touched.

    Built from the push's own changed ranges, not by diffing the texts: linear in the size
    of the change, however big the cell (a text diff of two large cells is quadratic).
    """
    hunks: list[list] = []  # [start_after, end_after, start_before, end_before, whole]
    for from_a, to_a, from_b, to_b, _ in undo.iter_changes():
        fa, ta = utf16_to_index(after, from_a), utf16_to_index(after, to_a)
        fb, tb = utf16_to_index(before, from_b), utf16_to_index(before, to_b)
        sa, sb = after.rfind("\n", 0, fa) + 1, before.rfind("\n", 0, fb) + 1
        # whole lines in and out (an added or removed line): no unchanged line to show
        whole = (fa == sa and fb == sb and (ta == fa or after[ta - 1] == "\n")
                 and (tb == fb or before[tb - 1] == "\n"))
        ea, eb = (ta, tb) if whole else (_line_end(after, ta), _line_end(before, tb))
        if hunks and sa <= hunks[-1][1]:  # shares a line with the previous hunk
            last = hunks[-1]
            if not (whole and last[4]):
                ea, eb = _line_end(after, max(ea, last[1])), _line_end(before, max(eb, last[3]))
            last[1], last[3], last[4] = max(ea, last[1]), max(eb, last[3]), whole and last[4]
        else:
            hunks.append([sa, ea, sb, eb, whole])
    out: list[str] = []
    line_a = line_b = 1
    pos_a = pos_b = 0
    for sa, ea, sb, eb, whole in hunks:
        line_a += after.count("\n", pos_a, sa)
        line_b += before.count("\n", pos_b, sb)
        pos_a, pos_b = sa, sb
        old, new = _lines(before, sb, eb, whole), _lines(after, sa, ea, whole)
        out.append(f"@@ -{line_b},{len(old)} +{line_a},{len(new)} @@")
        out.extend(["-" + line for line in old] + ["+" + line for line in new])
    return "\n".join(out)


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _lines(text: str, start: int, end: int, whole: bool) -> list[str]:
    if whole:  # [start, end) ends after a line break, or is empty
        return text[start:end - 1].split("\n") if end > start else []
    return text[start:end].split("\n")


def blame(doc: str, version: int, records: list[EditRecord]) -> list[EditRecord | None]:
    """For each line of `doc`, the push that last wrote it, or None: older than the window.

    Each push's changed ranges are mapped into today's text through the pushes after it, and
    the lines still open there are its (whether an inserted line break split a line is read
    from the text right after that push).
    """
    starts, ends, pos = [], [], 0  # each line's content [start, end), UTF-16 units
    for line in doc.split("\n"):
        starts.append(pos)
        ends.append(pos + utf16_len(line))
        pos = ends[-1] + 1
    owner: list[EditRecord | None] = [None] * len(starts)
    open_lines, to_now = len(starts), None  # to_now: positions after this push -> today
    for step in steps_back(doc, version, records):
        if not open_lines:
            break
        undo, after = ChangeSet.from_json(step.record.undo), step.after
        for fa, ta, _, _, text in undo.iter_changes():
            # the range inside (without what was inserted at its edges since), and its edges
            # outside (the text that was right before and right after it)
            now_a = to_now.map_pos(fa, 1) if to_now else fa
            now_b = to_now.map_pos(ta, -1) if to_now else ta
            edge_a = to_now.map_pos(fa, -1) if to_now else fa
            edge_b = to_now.map_pos(ta, 1) if to_now else ta
            if fa < ta and now_a >= now_b:
                continue  # what it inserted is gone since
            i, j = utf16_to_index(after, fa), utf16_to_index(after, ta)
            change = (now_a, max(now_a, now_b), text, i == 0 or after[i - 1] == "\n",
                      j == len(after) or after[j] == "\n", edge_a, edge_b)
            first = max(bisect.bisect_right(starts, edge_a) - 1, 0)
            for index in range(first, len(starts)):
                if starts[index] > edge_b + 1:
                    break
                if owner[index] is None and _touches(change, starts[index], ends[index]):
                    owner[index] = step.record
                    open_lines -= 1
        sections = _swapped(undo)
        forward = ChangeSet(sections, [""] * (len(sections) // 2))
        to_now = forward if to_now is None else forward.compose_desc(to_now)
    return owner


def _swapped(changes: ChangeSet) -> list[int]:
    """The sections of the inverse change (positions only)."""
    sections = list(changes._sections)  # noqa: SLF001 - same package, positions only
    for k in range(0, len(sections), 2):
        if sections[k + 1] >= 0:
            sections[k], sections[k + 1] = sections[k + 1], sections[k]
    return sections


def _touches(change: tuple, start: int, end: int) -> bool:
    """Whether a change (in undo direction: the push made [fa, ta) out of `text`) wrote the
    line whose content is [start, end). `starts_line` / `ends_line`: whether [fa, ta) begins
    at a line's start / ends at a line's end (else an inserted line break split a line)."""
    fa, ta, text, starts_line, ends_line, edge_a, edge_b = change
    if fa < ta:
        if start < end and fa < end and ta > start:
            return True  # what it inserted is in the line
        if start == end and (fa < start < ta or (fa == start and not ends_line)
                             or (ta == start and not starts_line)):
            return True  # an empty line: one of its line breaks is what it inserted
        if not text:  # a pure insertion next to the line: did it split it?
            return (edge_a == end and not ends_line) or (edge_b == start and not starts_line)
    elif start < fa < end:
        return True  # it deleted inside the line
    # it deleted at an edge of the line: the line's own text, unless a line break is there
    return (edge_b == start and not text.endswith("\n")) or (
        edge_a == end and not text.startswith("\n"))
