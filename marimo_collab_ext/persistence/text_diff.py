"""Small change sets between two texts, in CodeMirror's UTF-16 positions.

Used to turn a new version of a text (the file on disk, an editor's buffer) into edits.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from ..ot import ChangeSet
from ..ot.text import utf16_len

__all__ = ["diff_changes", "diff_specs", "touched_ranges"]

# Character-level refinement is quadratic in the worst case: only for small hunks.
_REFINE_LIMIT = 4000
_LINE = re.compile(r"[^\n]*\n|[^\n]+")


def diff_changes(old: str, new: str) -> ChangeSet:
    """A change set turning `old` into `new` that keeps every unchanged line and character.

    Small and local, so that it maps well over concurrent edits elsewhere in the text.
    """
    return ChangeSet.of(diff_specs(old, new), utf16_len(old))


def diff_specs(old: str, new: str) -> list[dict]:
    """The changes from `old` to `new` as `{"from", "to", "insert"}` specs, ascending.

    Positions are UTF-16 offsets in `old`, as ChangeSet.of and the wire protocol take them.
    """
    if old == new:
        return []
    # A common prefix and suffix, in whole code points, never split a surrogate pair.
    start = _common_prefix(old, new)
    end = _common_suffix(old, new, start)
    mid_old, mid_new = old[start : len(old) - end], new[start : len(new) - end]
    specs: list[dict] = []
    _diff_lines(mid_old, mid_new, utf16_len(old[:start]), specs)
    return specs


def touched_ranges(changes: ChangeSet) -> list[tuple[int, int]]:
    """The ranges of the old document a change set replaces or inserts at.

    Used to tell whether two edits of one text overlap (a conflict worth reporting).
    """
    return [(from_a, to_a) for from_a, to_a, _fb, _tb, _text in changes.iter_changes()]


def _diff_lines(old: str, new: str, base: int, specs: list[dict]) -> None:
    a, b = _LINE.findall(old), _LINE.findall(new)
    pos = base
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        chunk_old = "".join(a[i1:i2])
        chunk_new = "".join(b[j1:j2])
        if tag == "replace" and len(chunk_old) + len(chunk_new) <= _REFINE_LIMIT:
            _diff_chars(chunk_old, chunk_new, pos, specs)
        elif tag != "equal":
            specs.append({"from": pos, "to": pos + utf16_len(chunk_old), "insert": chunk_new})
        pos += utf16_len(chunk_old)


def _diff_chars(old: str, new: str, base: int, specs: list[dict]) -> None:
    pos = base
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        size = utf16_len(old[i1:i2])
        if tag != "equal":
            specs.append({"from": pos, "to": pos + size, "insert": new[j1:j2]})
        pos += size


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    # Binary search on slices compares in C, fast even for long texts.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, prefix: int) -> int:
    n = min(len(a), len(b)) - prefix
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo
