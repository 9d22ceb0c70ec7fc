"""UTF-16 positions on Python strings, including the astral index kept for big documents.

Checked against a plain reference: splicing the UTF-16 bytes of the document.
"""

from __future__ import annotations

import random

import pytest

from marimo_collab_ext.ot import ChangeSet, utf16_len
from marimo_collab_ext.ot import text as text_module
from marimo_collab_ext.ot.text import (
    astral_starts,
    canonical,
    index_to_utf16,
    utf16_slice,
    utf16_to_index,
)

PIECES = ["a", "bc", "\n", "é", "中文", "😀", "👩\u200d💻", "🇫🇷", "\ud83d", "\ude00", " "]
SEED = random.SystemRandom().randrange(2**32)


def reference_apply(cs: ChangeSet, doc: str) -> str:
    """Apply by splicing UTF-16 code units: slow, obviously right."""
    units = doc.encode("utf-16-le", "surrogatepass")
    out, pos = [], 0
    for from_a, to_a, _, _, text in cs.iter_changes():
        out.append(units[2 * pos : 2 * from_a])
        out.append(text.encode("utf-16-le", "surrogatepass"))
        pos = to_a
    out.append(units[2 * pos :])
    return b"".join(out).decode("utf-16-le", "surrogatepass")


def reference_starts(doc: str) -> list[int]:
    units = doc.encode("utf-16-le", "surrogatepass")
    codes = [int.from_bytes(units[i : i + 2], "little") for i in range(0, len(units), 2)]
    return [
        i
        for i in range(len(codes) - 1)
        if 0xD800 <= codes[i] < 0xDC00 and 0xDC00 <= codes[i + 1] < 0xE000
    ]


def random_text(rng: random.Random, n: int) -> str:
    return canonical("".join(rng.choice(PIECES) for _ in range(n)))


def random_changes(rng: random.Random, length: int) -> ChangeSet:
    specs = []
    for _ in range(rng.randint(1, 4)):
        start = rng.randint(0, length)
        end = min(length, start + rng.choice([0, 0, 1, 2, 5, 40]))
        specs.append({"from": start, "to": end, "insert": random_text(rng, rng.randint(0, 3))})
    return ChangeSet.of(specs, length)


@pytest.mark.parametrize("seed", [1, 2, SEED])
def test_chained_edits_on_a_big_document_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    doc = random_text(rng, 900)
    for step in range(400):
        cs = random_changes(rng, utf16_len(doc))
        expected = reference_apply(cs, doc)
        got = cs.apply(doc)
        assert got == expected, f"seed {seed}, step {step}"
        assert utf16_len(got) == cs.new_length
        assert astral_starts(got) == reference_starts(got), f"seed {seed}, step {step}"
        if rng.random() < 0.05:
            # The old document, whose index apply handed on, still works.
            assert cs.apply(doc) == expected
        doc = got


def test_index_survives_a_full_cache() -> None:
    docs = [random_text(random.Random(i), 700) + "😀" for i in range(40)]
    for doc in docs:
        assert utf16_len(doc) == len(doc.encode("utf-16-le", "surrogatepass")) // 2
    assert len(text_module._index_cache) <= text_module._CACHE_SIZE
    for doc in docs:
        assert astral_starts(doc) == reference_starts(doc)


def test_utf16_slice_matches_the_reference() -> None:
    rng = random.Random(SEED)
    for _ in range(300):
        s = random_text(rng, rng.randint(0, 12))
        units = s.encode("utf-16-le", "surrogatepass")
        n = len(units) // 2
        a = rng.randint(0, n)
        b = rng.randint(a, n)
        expected = units[2 * a : 2 * b].decode("utf-16-le", "surrogatepass")
        assert utf16_slice(s, a, b) == expected, (s, a, b)


def test_index_and_position_conversions_are_inverse() -> None:
    rng = random.Random(SEED)
    for _ in range(200):
        s = random_text(rng, rng.randint(0, 700))
        index = rng.randint(0, len(s))
        pos = index_to_utf16(s, index)
        assert pos == len(s[:index].encode("utf-16-le", "surrogatepass")) // 2
        assert utf16_to_index(s, pos) == index
