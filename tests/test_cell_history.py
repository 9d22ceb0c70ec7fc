"""Diffs and blame stepped back through journaled undo changes (room/cell_history.py)."""

from __future__ import annotations

from marimo_collab_ext.persistence.journal import EditRecord
from marimo_collab_ext.persistence.text_diff import diff_changes
from marimo_collab_ext.room.cell_history import blame, describe, steps_back


def history(first: str, *edits: tuple[str, str]) -> tuple[str, int, list[EditRecord]]:
    """The text after `edits` (author, new text), its version and records, newest first."""
    text, records = first, []
    for version, (author, new) in enumerate(edits):
        undo = diff_changes(text, new).invert(text).to_json()
        records.append(EditRecord(version, version + 1, author, float(version), undo, None))
        text = new
    return text, len(edits), records[::-1]


def who(doc: str, version: int, records: list[EditRecord]) -> list[str | None]:
    owners = blame(doc, version, records)
    return [r.username if r else None for r in owners]


def test_blame_attributes_each_line_to_the_push_that_last_wrote_it():
    doc, version, records = history(
        "a = 1\nb = 2\nc = 3\nd = 4",
        ("ann", "# top\na = 1\nb = 2\nc = 3\nd = 4"),       # a new first line
        ("bob", "# top\na = 1\nb = 20\nc = 3\nd = 4"),      # inside a line
        ("cat", "# top\na = 1\nb = 20\nd = 4"),             # a whole line removed
        ("dan", "# top\na = 1b = 20\nd = 4"),               # two lines joined
        ("eve", "# top\na = 1b = 20\nd = 4  # end"),        # the end of the last line
    )
    assert doc.split("\n") == ["# top", "a = 1b = 20", "d = 4  # end"]
    assert who(doc, version, records) == ["ann", "dan", "eve"]
    doc, version, records = history("x\ny", ("ann", "x\nnew\ny"), ("bob", "Z\nx\nnew\ny"),
                                    ("cat", "Z\nx\nnew\nyy\nlast"))
    assert who(doc, version, records) == ["bob", None, "ann", "cat", "cat"]


def test_blame_stops_at_a_gap():
    doc, version, records = history("a\nb", ("ann", "a\nB"), ("bob", "A\nB"))
    gap = [records[0], EditRecord(0, 1, "ann", 0.0, None, None)]  # older undo dropped
    assert who(doc, version, gap) == ["bob", None]


def test_diffs_show_the_whole_lines_each_push_touched():
    doc, version, records = history("a = 1\nb = 2\nc = 3", ("ann", "a = 1\nb = 22\nc = 3"),
                                    ("bob", "a = 1\nnew\nb = 22\nc = 3"),
                                    ("cat", "a = 1\nnew\nc = 3"))
    steps = list(steps_back(doc, version, records))
    diffs = [describe(step)["diff"] for step in reversed(steps)]
    assert diffs[0] == "@@ -2,1 +2,1 @@\n-b = 2\n+b = 22"
    assert diffs[1] == "@@ -2,0 +2,1 @@\n+new"
    assert diffs[2] == "@@ -3,1 +3,0 @@\n-b = 22"
    assert steps[-1].before == "a = 1\nb = 2\nc = 3"


def test_every_line_that_was_not_in_the_first_text_has_an_author():
    import random

    rng = random.Random(7)
    for _ in range(200):
        first = "\n".join(f"line{n}" for n in range(rng.randrange(1, 6)))
        text, edits = first, []
        for step in range(rng.randrange(1, 8)):
            a = rng.randrange(len(text) + 1)
            b = min(len(text), a + rng.randrange(4))
            piece = rng.choice(["", "x", "\n", "new\n", "\nz", "q\nr"]) + str(step)
            text = text[:a] + piece + text[b:]
            edits.append((f"p{step}", text))
        doc, version, records = history(first, *edits)
        owners = who(doc, version, records)
        assert len(owners) == len(doc.split("\n"))
        for line, owner in zip(doc.split("\n"), owners, strict=True):
            if line not in first.split("\n"):
                assert owner is not None, (first, edits, line)
