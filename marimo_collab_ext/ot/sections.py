"""The section algorithms behind ChangeSet, ported from @codemirror/state 6.7.

A change set is a flat list of (length, inserted length or -1 if kept) pairs plus
the inserted texts; these functions walk two such lists in step.
"""

from __future__ import annotations

from typing import Any

from .text import join_canonical, utf16_slice

__all__ = ["add_insert", "add_section", "compose_sections", "map_sections"]


def add_section(sections: list[int], length: int, ins: int, force_join: bool = False) -> None:
    """Append a section, merging it as CodeMirror's addSection does.

    These merging rules define the normalised form that ``ChangeSet.from_json`` insists on.
    """
    if length == 0 and ins <= 0:
        return
    last = len(sections) - 2
    if last >= 0 and ins <= 0 and ins == sections[last + 1]:
        sections[last] += length
    elif last >= 0 and length == 0 and sections[last] == 0:
        sections[last + 1] += ins
    elif force_join:
        sections[last] += length
        sections[last + 1] += ins
    else:
        sections.append(length)
        sections.append(ins)


def add_insert(values: list[str], sections: list[int], value: str) -> None:
    """Record inserted text for the last section (CodeMirror's addInsert).

    Text for a section that was merged into the previous one is appended to it.
    """
    if not value:
        return
    index = (len(sections) - 2) >> 1
    if index < len(values):
        values[-1] = join_canonical([values[-1], value])
    else:
        while len(values) < index:
            values.append("")
        values.append(value)


class _SectionIter:
    """Cursor over the sections of one change set (CodeMirror's SectionIter)."""

    __slots__ = ("sections", "inserted", "i", "len", "ins", "off")

    def __init__(self, cs: Any) -> None:
        self.sections = cs._sections  # a ChangeSet's internals, read only
        self.inserted = cs._inserted
        self.i = 0
        self.next()

    def next(self) -> None:
        if self.i < len(self.sections):
            self.len = self.sections[self.i]
            self.ins = self.sections[self.i + 1]
            self.i += 2
        else:
            self.len = 0
            self.ins = -2
        self.off = 0

    @property
    def done(self) -> bool:
        return self.ins == -2

    @property
    def len2(self) -> int:
        return self.len if self.ins < 0 else self.ins

    @property
    def text(self) -> str:
        index = (self.i - 2) >> 1
        return "" if index >= len(self.inserted) else self.inserted[index]

    def text_bit(self, length: int) -> str:
        index = (self.i - 2) >> 1
        if index >= len(self.inserted):
            return ""
        return utf16_slice(self.inserted[index], self.off, self.off + length)

    def forward(self, length: int) -> None:
        if length == self.len:
            self.next()
        else:
            self.len -= length
            self.off += length

    def forward2(self, length: int) -> None:
        if self.ins == -1:
            self.forward(length)
        elif length == self.ins:
            self.next()
        else:
            self.ins -= length
            self.off += length


def map_sections(set_a: Any, set_b: Any, before: bool, mk_set: bool) -> tuple[list[int], list[str]]:
    """Sections and texts of ``set_a`` mapped over ``set_b`` (CodeMirror's mapSet).

    Callers check the lengths first: with mismatched lengths CodeMirror's loop never ends.
    """
    sections: list[int] = []
    insert: list[str] | None = [] if mk_set else None
    a, b = _SectionIter(set_a), _SectionIter(set_b)
    inserted = -1
    while True:
        if (a.done and b.len) or (b.done and a.len):
            raise ValueError("Mismatched change set lengths")
        elif a.ins == -1 and b.ins == -1:
            n = min(a.len, b.len)
            add_section(sections, n, -1)
            a.forward(n)
            b.forward(n)
        elif b.ins >= 0 and (
            a.ins < 0
            or inserted == a.i
            or (a.off == 0 and (b.len < a.len or (b.len == a.len and not before)))
        ):
            n = b.len
            add_section(sections, b.ins, -1)
            while n:
                piece = min(a.len, n)
                if a.ins >= 0 and inserted < a.i and a.len <= piece:
                    add_section(sections, 0, a.ins)
                    if insert is not None:
                        add_insert(insert, sections, a.text)
                    inserted = a.i
                a.forward(piece)
                n -= piece
            b.next()
        elif a.ins >= 0:
            n, left = 0, a.len
            while left:
                if b.ins == -1:
                    piece = min(left, b.len)
                    n += piece
                    left -= piece
                    b.forward(piece)
                elif b.ins == 0 and b.len < left:
                    left -= b.len
                    b.next()
                else:
                    break
            add_section(sections, n, a.ins if inserted < a.i else 0)
            if insert is not None and inserted < a.i:
                add_insert(insert, sections, a.text)
            inserted = a.i
            a.forward(a.len - left)
        elif a.done and b.done:
            return sections, insert if insert is not None else []
        else:
            raise ValueError("Mismatched change set lengths")


def compose_sections(set_a: Any, set_b: Any, mk_set: bool) -> tuple[list[int], list[str]]:
    """Sections and texts of ``set_a`` followed by ``set_b`` (CodeMirror's composeSets).

    Callers check the lengths first, as for ``map_sections``.
    """
    sections: list[int] = []
    insert: list[str] | None = [] if mk_set else None
    a, b = _SectionIter(set_a), _SectionIter(set_b)
    open_ = False
    while True:
        if a.done and b.done:
            return sections, insert if insert is not None else []
        elif a.ins == 0:
            add_section(sections, a.len, 0, open_)
            a.next()
        elif b.len == 0 and not b.done:
            add_section(sections, 0, b.ins, open_)
            if insert is not None:
                add_insert(insert, sections, b.text)
            b.next()
        elif a.done or b.done:
            raise ValueError("Mismatched change set lengths")
        else:
            n = min(a.len2, b.len)
            section_len = len(sections)
            if a.ins == -1:
                ins_b = -1 if b.ins == -1 else (0 if b.off else b.ins)
                add_section(sections, n, ins_b, open_)
                if insert is not None and ins_b:
                    add_insert(insert, sections, b.text)
            elif b.ins == -1:
                add_section(sections, 0 if a.off else a.len, n, open_)
                if insert is not None:
                    add_insert(insert, sections, a.text_bit(n))
            else:
                add_section(sections, 0 if a.off else a.len, 0 if b.off else b.ins, open_)
                if insert is not None and not b.off:
                    add_insert(insert, sections, b.text)
            open_ = (a.ins > n or (b.ins >= 0 and b.len > n)) and (
                open_ or len(sections) > section_len
            )
            a.forward2(n)
            b.forward(n)
