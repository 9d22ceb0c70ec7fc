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

__all__ = [
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
    if _narrow(s):
        return False
    return _ASTRAL.search(s) is not None


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units, CodeMirror's unit for positions and lengths.

    O(1) for strings without astral characters (the usual case), one C pass otherwise.
    """
    if _narrow(s):
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) >> 1


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


class PositionMapper:
    """Convert ascending UTF-16 positions of one canonical string to Python indices.

    Walks the astral characters once, so a run of conversions costs one pass at most.
    """

    __slots__ = ("_s", "_iter", "_next", "_shift")

    def __init__(self, s: str) -> None:
        self._s = s
        self._shift = 0  # astral characters passed so far: position - index
        if has_astral(s):
            self._iter = _ASTRAL.finditer(s)
            self._next = self._advance()
        else:
            self._iter = None
            self._next = -1

    def _advance(self) -> int:
        m = next(self._iter, None)
        return -1 if m is None else m.start()

    def index(self, pos: int) -> tuple[int, bool]:
        """Python index for UTF-16 ``pos`` and whether ``pos`` falls inside a pair.

        When it does, the index is that of the astral character being split.
        """
        while self._next >= 0:
            start = self._next + self._shift
            if pos <= start:
                break
            if pos == start + 1:
                return self._next, True
            self._shift += 1
            self._next = self._advance()
        return pos - self._shift, False

    def slice(self, start: int, end: int) -> str:
        """The text between UTF-16 positions ``start`` and ``end`` (ascending across calls).

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
    return utf16_len(s[:index])


def split_lines(s: str) -> list[str]:
    """Split inserted text into lines the way CodeMirror does (``/\\r\\n?|\\n/``).

    Never ``str.splitlines``: it drops a trailing empty line and splits on more characters.
    """
    return _LINE_BREAK.split(s)
