"""UTF-16 view of Python strings, as CodeMirror counts positions.

Python ``str`` indexes code points; CodeMirror (JavaScript) indexes UTF-16 code
units, so an astral character (emoji) is one Python index but two positions.
Strings here are always *canonical*: valid surrogate pairs are joined into one
astral character, and only lone surrogates (left by an edit that split a pair,
as JavaScript allows) stay as surrogate code points. That is what ``json.loads``
produces for JSON text that went through JavaScript.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_left, bisect_right
from collections import OrderedDict

__all__ = [
    "AstralIndex",
    "astral_index",
    "astral_starts",
    "take_astral_index",
    "remember_astral_index",
    "has_astral",
    "is_canonical",
    "canonical",
    "join_canonical",
    "utf16_len",
    "utf16_slice",
    "utf16_to_index",
    "index_to_utf16",
    "split_lines",
    "PositionMapper",
]

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_LINE_BREAK = re.compile("\r\n?|\n")


def _probe_sizeof() -> int | None:
    # CPython stores a non-ASCII str with 1, 2 or 4 bytes per character (PEP 393), the
    # smallest that fits, so the object's size tells in O(1) whether any character is
    # astral. A str that is 1 or 2 bytes wide has none. Verify the layout once.
    base = sys.getsizeof("\xe9") - 2
    if sys.getsizeof("\u0100\u0100") - 6 != base or sys.getsizeof("\U00010000") - 8 != base:
        return None
    return base


_NONASCII_BASE = _probe_sizeof()


def _narrow(s: str) -> bool:
    """True when ``s`` certainly holds no character above U+FFFF (cheap, may say False)."""
    if s.isascii():
        return True
    if _NONASCII_BASE is None:
        return False
    extra = sys.getsizeof(s) - _NONASCII_BASE
    n = len(s) + 1
    # A cached UTF-8 copy makes the object bigger; then this says False and callers scan.
    return extra == n or extra == 2 * n


def _latin1(s: str) -> bool:
    """True when ``s`` certainly holds only characters below U+0100 (no surrogates)."""
    if s.isascii():
        return True
    return _NONASCII_BASE is not None and sys.getsizeof(s) - _NONASCII_BASE == len(s) + 1


def has_astral(s: str) -> bool:
    """Whether ``s`` contains a character outside the Basic Multilingual Plane.

    Such characters take two UTF-16 code units; without them, Python indices are positions.
    """
    return astral_index(s) is not None


class AstralIndex:
    """Where the astral characters of one string are, as UTF-16 positions.

    A gap buffer: an edit near the last one costs O(1), not O(number of astral characters).
    """

    __slots__ = ("length", "head", "tail")

    def __init__(self, starts: list[int], length: int) -> None:
        self.length = length  # UTF-16 length of the string
        self.head = starts  # ascending positions before the gap
        self.tail: list[int] = []  # ascending distances from the end (length - position)

    def __len__(self) -> int:
        return len(self.head) + len(self.tail)

    def count_before(self, pos: int) -> int:
        """How many astral characters start before UTF-16 position ``pos``.

        Includes one that ``pos`` splits.
        """
        tail = self.tail
        return bisect_left(self.head, pos) + len(tail) - bisect_right(tail, self.length - pos)

    def starts_at(self, pos: int) -> bool:
        """Whether an astral character starts at UTF-16 position ``pos``.

        ``p`` splits a pair exactly when one starts at ``p - 1``.
        """
        head, tail = self.head, self.tail
        i = bisect_left(head, pos)
        if i < len(head) and head[i] == pos:
            return True
        d = self.length - pos
        j = bisect_left(tail, d)
        return j < len(tail) and tail[j] == d

    def _move_gap(self, pos: int) -> None:
        head, tail, length = self.head, self.tail, self.length
        while head and head[-1] >= pos:
            tail.append(length - head.pop())
        while tail and length - tail[-1] < pos:
            head.append(length - tail.pop())

    def replace(self, start: int, end: int, inserted: list[int], inserted_len: int) -> None:
        """Update in place for ``[start, end)`` replaced by text of ``inserted_len`` units.

        ``inserted`` are the astral positions within that text. Pairs cut at either end vanish.
        """
        self._move_gap(start)
        head, tail = self.head, self.tail
        if head and head[-1] == start - 1:
            head.pop()
        bound = self.length - end
        while tail and tail[-1] > bound:
            tail.pop()
        if inserted:
            head.extend([start + u for u in inserted])
        self.length += inserted_len - (end - start)


# Big documents with astral characters are edited a keystroke at a time: scanning them for
# every edit would cost a full pass, so the indexes of the last few are kept (by identity:
# hashing a large str is a full pass too), and ``ChangeSet.apply`` hands each one on to
# the result. Not for concurrent use of one string from several threads.
_CACHE_MIN_LEN = 512
_CACHE_SIZE = 16
_index_cache: OrderedDict[int, tuple[str, AstralIndex]] = OrderedDict()


def _scan(s: str) -> AstralIndex | None:
    starts = [m.start() + k for k, m in enumerate(_ASTRAL.finditer(s))]
    return AstralIndex(starts, len(s) + len(starts)) if starts else None


def astral_index(s: str) -> AstralIndex | None:
    """The astral index of ``s``, or None when ``s`` has no astral character.

    Shared with the cache: read it, never change it (``take_astral_index`` is for that).
    """
    if _narrow(s):
        return None
    if len(s) < _CACHE_MIN_LEN:
        return _scan(s)
    hit = _index_cache.get(id(s))
    if hit is not None and hit[0] is s:
        _index_cache.move_to_end(id(s))
        return hit[1]
    index = _scan(s)
    # None is kept too: a str whose size hides its width (say, with a cached UTF-8 copy)
    # is scanned once, not at every keystroke.
    remember_astral_index(s, index)
    return index


def take_astral_index(s: str) -> AstralIndex | None:
    """The astral index of ``s``, removed from the cache so that the caller may change it.

    For ``apply``, which turns the old document's index into the new one's.
    """
    if _narrow(s):
        return None
    hit = _index_cache.pop(id(s), None)
    if hit is not None and hit[0] is s:
        return hit[1]
    return _scan(s)


def remember_astral_index(s: str, index: AstralIndex | None) -> None:
    """Keep the astral index of a big string for the next edit of it.

    ``index`` must describe ``s`` exactly.
    """
    if len(s) < _CACHE_MIN_LEN:
        return
    _index_cache[id(s)] = (s, index)
    _index_cache.move_to_end(id(s))
    while len(_index_cache) > _CACHE_SIZE:
        _index_cache.popitem(last=False)


def astral_starts(s: str) -> list[int]:
    """UTF-16 positions of the astral characters of ``s``, ascending (empty if none).

    A fresh list each time.
    """
    index = astral_index(s)
    if index is None:
        return []
    return index.head + [index.length - d for d in reversed(index.tail)]


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units, CodeMirror's unit for positions and lengths.

    O(1) for strings without astral characters (the usual case) and for cached documents.
    """
    if _narrow(s):
        return len(s)
    index = astral_index(s)
    return len(s) if index is None else index.length


def is_canonical(s: str) -> bool:
    """Whether ``s`` has no high surrogate directly followed by a low surrogate.

    Such a pair is one character in JavaScript; ``canonical`` joins it.
    """
    return _latin1(s) or _PAIR.search(s) is None


def canonical(s: str) -> str:
    """Join every valid surrogate pair of ``s`` into its astral character.

    Lone surrogates stay as they are; the UTF-16 length does not change.
    """
    if _latin1(s) or _SURROGATE.search(s) is None:
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _is_high(c: str) -> bool:
    return "\ud800" <= c <= "\udbff"


def _is_low(c: str) -> bool:
    return "\udc00" <= c <= "\udfff"


def _join_pair(high: str, low: str) -> str:
    return chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00))


def join_canonical(pieces: list[str]) -> str:
    """Concatenate canonical strings so that the result is canonical too.

    Two halves of a pair that was split earlier become one character again.
    """
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out and _is_low(piece[0]) and _is_high(out[-1][-1]):
            out[-1] = out[-1][:-1] + _join_pair(out[-1][-1], piece[0])
            piece = piece[1:]
            if not piece:
                continue
        out.append(piece)
    return "".join(out)


def _halves(c: str) -> tuple[str, str]:
    v = ord(c) - 0x10000
    return chr(0xD800 + (v >> 10)), chr(0xDC00 + (v & 0x3FF))


_LOOK_UP = object()


class PositionMapper:
    """Convert UTF-16 positions of one canonical string to Python indices.

    Each lookup is a few bisections in the string's astral index.
    """

    __slots__ = ("_s", "_index")

    def __init__(self, s: str, index: AstralIndex | None | object = _LOOK_UP) -> None:
        self._s = s
        self._index = astral_index(s) if index is _LOOK_UP else index

    def index(self, pos: int) -> tuple[int, bool]:
        """Python index for UTF-16 ``pos`` and whether ``pos`` falls inside a pair.

        When it does, the index is that of the astral character being split.
        """
        index = self._index
        if index is None:
            return pos, False
        return pos - index.count_before(pos), index.starts_at(pos - 1)

    def slice(self, start: int, end: int) -> str:
        """The text between UTF-16 positions ``start`` and ``end`` of the string.

        Like JavaScript's ``slice``: a bound inside a pair keeps the half in range.
        """
        s = self._s
        i, split_i = self.index(start)
        j, split_j = self.index(end)
        if split_i and split_j and i == j:
            return ""
        head = ""
        if split_i:
            head = _halves(s[i])[1]
            i += 1
        if split_j:
            return head + s[i:j] + _halves(s[j])[0]
        return head + s[i:j]


def utf16_slice(s: str, start: int, end: int | None = None) -> str:
    """``s.slice(start, end)`` as JavaScript computes it, for a canonical ``s``.

    A bound inside a surrogate pair keeps the half that falls in range (a lone surrogate).
    """
    if _narrow(s):
        return s[start:end]
    if end is None:
        end = utf16_len(s)
    return PositionMapper(s).slice(start, end)


def utf16_to_index(s: str, pos: int) -> int:
    """Python index of UTF-16 position ``pos`` in ``s`` (an index inside a pair rounds down).

    For callers that hold positions from CodeMirror and need to slice Python strings.
    """
    if _narrow(s):
        return pos
    return PositionMapper(s).index(pos)[0]


def index_to_utf16(s: str, index: int) -> int:
    """UTF-16 position of Python index ``index`` in ``s``.

    The inverse of ``utf16_to_index`` for indices between characters.
    """
    if _narrow(s):
        return index
    index = max(0, min(index, len(s)))
    # Scan the string in place: a slice would be a new big string for the index cache.
    return index + sum(1 for _ in _ASTRAL.finditer(s, 0, index))


def split_lines(s: str) -> list[str]:
    """Split inserted text into lines the way CodeMirror does (``/\\r\\n?|\\n/``).

    Never ``str.splitlines``: it drops a trailing empty line and splits on more characters.
    """
    return _LINE_BREAK.split(s)
