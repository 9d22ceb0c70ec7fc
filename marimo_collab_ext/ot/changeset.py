"""ChangeSet: a Python port of @codemirror/state 6.7's ChangeSet.

Same sections, same JSON, same results as the JavaScript library (checked by
tests/test_ot_differential.py); positions count UTF-16 code units. Unlike the
original it validates input strictly and raises ``ValueError`` where the original
would loop forever or silently accept mismatched lengths.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from .sections import add_insert, add_section, compose_sections, map_sections
from .text import (
    AstralIndex,
    PositionMapper,
    astral_starts,
    canonical,
    join_canonical,
    remember_astral_index,
    split_lines,
    take_astral_index,
    utf16_len,
)

__all__ = ["ChangeSet", "MapMode"]


class MapMode(IntEnum):
    """How ``ChangeSet.map_pos`` treats a position whose context was deleted.

    Values match CodeMirror's ``MapMode`` enum.
    """

    SIMPLE = 0
    TRACK_DEL = 1
    TRACK_BEFORE = 2
    TRACK_AFTER = 3


def _bad(why: str) -> ValueError:
    return ValueError(f"Invalid JSON representation of ChangeSet: {why}")


def _is_count(v: Any) -> bool:
    # JSON true is an int in Python and 5.0 a float: neither is a length.
    return type(v) is int and v >= 0


class ChangeSet:
    """A group of changes to a document of one length, as in CodeMirror.

    Immutable; build one with ``of`` or ``from_json``.
    """

    __slots__ = ("_sections", "_inserted", "_length", "_new_length", "_ascii")

    def __init__(self, sections: list[int], inserted: list[str]) -> None:
        # sections: pairs (length in the old document, -1 if kept else inserted length);
        # inserted[k]: canonical text of pair k, lines joined with "\n" ("" if none).
        self._sections = sections
        self._inserted = inserted
        length = new_length = 0
        for k in range(0, len(sections), 2):
            n, ins = sections[k], sections[k + 1]
            length += n
            new_length += n if ins < 0 else ins
        self._length = length
        self._new_length = new_length
        self._ascii: bool | None = None

    # -- construction ---------------------------------------------------------------

    @classmethod
    def empty_of(cls, length: int) -> ChangeSet:
        """A change set that changes nothing in a document of ``length`` units.

        CodeMirror's ``ChangeSet.empty``.
        """
        if not _is_count(length):
            raise ValueError(f"Invalid document length {length!r}")
        return cls([length, -1] if length else [], [])

    @classmethod
    def from_json(cls, value: Any) -> ChangeSet:
        """Parse untrusted ChangeSet JSON, accepting only the normalised form ``to_json`` makes.

        Raises ValueError for anything else (bad types, zero-length or unmerged parts, line breaks).
        """
        if type(value) is not list:
            raise _bad("not a list")
        sections: list[int] = []
        inserted: list[str] = []
        prev_kind = 0  # 1 kept, 2 deleted, 3 pure insertion, 4 replacement
        for i, part in enumerate(value):
            if type(part) is int:
                if part <= 0:
                    raise _bad(f"part {i}: kept length must be a positive integer")
                if prev_kind == 1:
                    raise _bad(f"part {i}: adjacent kept parts are not normalised")
                sections.append(part)
                sections.append(-1)
                prev_kind = 1
                continue
            if type(part) is not list or not part or not _is_count(part[0]):
                raise _bad(f"part {i}: expected a non-negative integer or [length, ...lines]")
            n = part[0]
            if len(part) == 1:
                if n == 0:
                    raise _bad(f"part {i}: zero-length deletion")
                if prev_kind == 2:
                    raise _bad(f"part {i}: adjacent deletions are not normalised")
                sections.append(n)
                sections.append(0)
                prev_kind = 2
                continue
            lines = part[1:]
            for line in lines:
                if type(line) is not str:
                    raise _bad(f"part {i}: inserted lines must be strings")
                if "\n" in line or "\r" in line:
                    raise _bad(f"part {i}: inserted lines must not contain line breaks")
            text = "\n".join(lines)
            ins = utf16_len(text)
            if ins == 0:
                raise _bad(f"part {i}: empty insertion")
            if n == 0 and prev_kind == 3:
                raise _bad(f"part {i}: adjacent insertions are not normalised")
            while len(inserted) < (len(sections) >> 1):
                inserted.append("")
            # json.loads gives canonical text for JSON, but a Python caller may not.
            inserted.append(canonical(text))
            sections.append(n)
            sections.append(ins)
            prev_kind = 3 if n == 0 else 4
        return cls(sections, inserted)

    @classmethod
    def of(cls, specs: Any, length: int) -> ChangeSet:
        """Build a change set from ``{"from", "to"?, "insert"?}`` specs in a document of ``length``.

        Positions refer to the original document, as in CodeMirror's ``ChangeSet.of``.
        """
        if not _is_count(length):
            raise ValueError(f"Invalid document length {length!r}")
        state: dict[str, Any] = {"sections": [], "inserted": [], "pos": 0, "total": None}

        def flush(force: bool = False) -> None:
            if not force and not state["sections"]:
                return
            if state["pos"] < length:
                add_section(state["sections"], length - state["pos"], -1)
            part = cls(state["sections"], state["inserted"])
            total = state["total"]
            state["total"] = total.compose(part.map(total)) if total is not None else part
            state["sections"], state["inserted"], state["pos"] = [], [], 0

        def process(spec: Any) -> None:
            if isinstance(spec, (list, tuple)):
                for sub in spec:
                    process(sub)
            elif isinstance(spec, ChangeSet):
                if spec.length != length:
                    raise ValueError(
                        f"Mismatched change set length (got {spec.length}, expected {length})"
                    )
                flush()
                total = state["total"]
                state["total"] = total.compose(spec.map(total)) if total is not None else spec
            elif isinstance(spec, dict):
                frm = spec.get("from")
                to = spec.get("to", frm)
                if to is None:
                    to = frm
                insert = spec.get("insert")
                if not _is_count(frm) or not _is_count(to):
                    raise ValueError(f"Invalid change range {frm!r} to {to!r}")
                if frm > to or to > length:
                    raise ValueError(
                        f"Invalid change range {frm} to {to} (in doc of length {length})"
                    )
                if insert is None:
                    insert = ""
                if not isinstance(insert, str):
                    raise ValueError("insert must be a string")
                text = canonical("\n".join(split_lines(insert))) if insert else ""
                ins_len = utf16_len(text)
                if frm == to and ins_len == 0:
                    return
                if frm < state["pos"]:
                    flush()
                if frm > state["pos"]:
                    add_section(state["sections"], frm - state["pos"], -1)
                add_section(state["sections"], to - frm, ins_len)
                add_insert(state["inserted"], state["sections"], text)
                state["pos"] = to
            else:
                raise ValueError(f"Invalid change spec {spec!r}")

        try:
            process(specs)
        except RecursionError:
            raise ValueError("change specs are nested too deeply") from None
        flush(state["total"] is None)
        return state["total"]

    # -- inspection -----------------------------------------------------------------

    @property
    def length(self) -> int:
        """Length of the document before the change, in UTF-16 units."""
        return self._length

    @property
    def new_length(self) -> int:
        """Length of the document after the change, in UTF-16 units."""
        return self._new_length

    @property
    def weight(self) -> int:
        """What holding the set costs, in UTF-16 units: its inserted text plus one per part."""
        s = self._sections
        return sum(s[k] for k in range(1, len(s), 2) if s[k] > 0) + (len(s) >> 1)

    @property
    def empty(self) -> bool:
        """True when the set changes nothing."""
        s = self._sections
        return len(s) == 0 or (len(s) == 2 and s[1] < 0)

    def to_json(self) -> list[Any]:
        """The normalised JSON form, identical to CodeMirror's ``toJSON``.

        The server sends only this, never JSON a client gave it.
        """
        parts: list[Any] = []
        s, inserted = self._sections, self._inserted
        for k in range(0, len(s), 2):
            n, ins = s[k], s[k + 1]
            if ins < 0:
                parts.append(n)
            elif ins == 0:
                parts.append([n])
            else:
                parts.append([n, *inserted[k >> 1].split("\n")])
        return parts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChangeSet):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self.to_json()))

    def __repr__(self) -> str:
        return f"ChangeSet.from_json({self.to_json()!r})"

    def iter_changes(self, individual: bool = False):
        """Yield ``(from_a, to_a, from_b, to_b, text)`` for each changed range.

        Adjacent changes are merged unless ``individual`` is true, as in CodeMirror.
        """
        s, inserted = self._sections, self._inserted
        pos_a = pos_b = 0
        i = 0
        while i < len(s):
            n, ins = s[i], s[i + 1]
            i += 2
            if ins < 0:
                pos_a += n
                pos_b += n
                continue
            end_a, end_b, pieces = pos_a, pos_b, []
            while True:
                end_a += n
                end_b += ins
                if ins:
                    pieces.append(inserted[(i - 2) >> 1])
                if individual or i == len(s) or s[i + 1] < 0:
                    break
                n, ins = s[i], s[i + 1]
                i += 2
            yield pos_a, end_a, pos_b, end_b, join_canonical(pieces)
            pos_a, pos_b = end_a, end_b

    # -- operations -----------------------------------------------------------------

    def _inserts_ascii(self) -> bool:
        if self._ascii is None:
            self._ascii = all(t.isascii() for t in self._inserted)
        return self._ascii

    def apply(self, doc: str) -> str:
        """Apply the changes to ``doc`` (which must be ``length`` UTF-16 units long).

        Raises ValueError when the lengths differ.
        """
        if doc.isascii() and self._inserts_ascii():
            # Python indices are positions, and no surrogate pair can form or split.
            if len(doc) != self._length:
                raise ValueError("Applying change set to a document with the wrong length")
            s, inserted = self._sections, self._inserted
            pieces, pos = [], 0
            for k in range(0, len(s), 2):
                n, ins = s[k], s[k + 1]
                if ins < 0:
                    pieces.append(doc[pos : pos + n])
                elif ins:
                    pieces.append(inserted[k >> 1])
                pos += n
            return "".join(pieces)
        if utf16_len(doc) != self._length:
            raise ValueError("Applying change set to a document with the wrong length")
        index = take_astral_index(doc)
        mapper = PositionMapper(doc, index)
        s, inserted = self._sections, self._inserted
        pieces: list[str] = []
        pos = 0
        for k in range(0, len(s), 2):
            n, ins = s[k], s[k + 1]
            if ins < 0:
                pieces.append(mapper.slice(pos, pos + n))
            elif ins:
                pieces.append(inserted[k >> 1])
            pos += n
        result = join_canonical(pieces)
        if index is None and self._inserts_ascii():
            return result
        # Hand the document's astral index on to the result, so that the next keystroke
        # on a big document does not scan it again (see text.astral_index).
        if index is None:
            index = AstralIndex([], self._length)
        for from_a, to_a, _, _, text in reversed(list(self.iter_changes())):
            index.replace(from_a, to_a, astral_starts(text), utf16_len(text))
        if len(index) and len(result) + len(index) == self._new_length:
            remember_astral_index(result, index)  # unless a split pair was joined back
        return result

    def invert(self, doc: str) -> ChangeSet:
        """The change set that turns the changed document back into ``doc``.

        ``doc`` is the document this set applies to.
        """
        if utf16_len(doc) != self._length:
            raise ValueError("Inverting change set against a document with the wrong length")
        sections = list(self._sections)
        inserted: list[str] = []
        mapper = PositionMapper(doc)
        pos = 0
        for k in range(0, len(sections), 2):
            n, ins = sections[k], sections[k + 1]
            if ins >= 0:
                sections[k], sections[k + 1] = ins, n
                index = k >> 1
                while len(inserted) < index:
                    inserted.append("")
                inserted.append(mapper.slice(pos, pos + n) if n else "")
            pos += n
        return ChangeSet(sections, inserted)

    def compose(self, other: ChangeSet) -> ChangeSet:
        """The single change set that does ``self`` then ``other``.

        ``other`` must start in the document ``self`` produces (ValueError otherwise).
        """
        if self._new_length != other._length:
            raise ValueError(
                f"Mismatched change set lengths (compose {self._new_length} -> {other._length})"
            )
        if self.empty:
            return other
        if other.empty:
            return self
        return ChangeSet(*compose_sections(self, other, True))

    def map(self, other: ChangeSet, before: bool = False) -> ChangeSet:
        """This set moved over ``other`` (both from the same document), to apply after it.

        When ``before`` is true, ``self`` is ordered first at equal positions.
        """
        if self._length != other._length:
            raise ValueError(
                f"Mismatched change set lengths (map {self._length} over {other._length})"
            )
        if other.empty:
            return self
        return ChangeSet(*map_sections(self, other, before, True))

    def map_desc(self, other: ChangeSet, before: bool = False) -> ChangeSet:
        """Like ``map`` but without inserted text: only positions are kept.

        For rebasing, where the moved set only serves to move other sets.
        """
        if self._length != other._length:
            raise ValueError(
                f"Mismatched change set lengths (map {self._length} over {other._length})"
            )
        return ChangeSet(*map_sections(self, other, before, False))

    def compose_desc(self, other: ChangeSet) -> ChangeSet:
        """Like ``compose`` but without inserted text: only positions are kept.

        For rebasing, where the composed set only serves to move other sets.
        """
        if self._new_length != other._length:
            raise ValueError(
                f"Mismatched change set lengths (compose {self._new_length} -> {other._length})"
            )
        if self.empty:
            return other
        if other.empty:
            return self
        return ChangeSet(*compose_sections(self, other, False))

    def map_pos(self, pos: int, assoc: int = -1, mode: MapMode = MapMode.SIMPLE) -> int | None:
        """Map a position in the old document to the new one (None when ``mode`` says deleted).

        ``assoc`` picks the side of an insertion at ``pos`` (negative: before it).
        """
        if type(pos) is not int or pos < 0:
            raise ValueError(f"Invalid position {pos!r}")
        s = self._sections
        pos_a = pos_b = 0
        for k in range(0, len(s), 2):
            n, ins = s[k], s[k + 1]
            end_a = pos_a + n
            if ins < 0:
                if end_a > pos:
                    return pos_b + (pos - pos_a)
                pos_b += n
            else:
                if (
                    mode != MapMode.SIMPLE
                    and end_a >= pos
                    and (
                        (mode == MapMode.TRACK_DEL and pos_a < pos and end_a > pos)
                        or (mode == MapMode.TRACK_BEFORE and pos_a < pos)
                        or (mode == MapMode.TRACK_AFTER and end_a > pos)
                    )
                ):
                    return None
                if end_a > pos or (end_a == pos and assoc < 0 and not n):
                    return pos_b if (pos == pos_a or assoc < 0) else pos_b + ins
                pos_b += ins
            pos_a = end_a
        if pos > pos_a:
            raise ValueError(f"Position {pos} is out of range for changeset of length {pos_a}")
        return pos_b
