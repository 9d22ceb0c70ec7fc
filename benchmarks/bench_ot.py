"""Benchmark: parse and apply one keystroke on a 100k-unit document.

Prints the median time in microseconds and its ratio to the 20 µs goal.
"""

from __future__ import annotations

import statistics
import time

from marimo_collab_ext.ot import ChangeSet, utf16_len
from marimo_collab_ext.ot.text import _index_cache

GOAL_US = 20.0
DOC_UNITS = 100_000


def _doc(line: str) -> str:
    doc = ""
    while utf16_len(doc) < DOC_UNITS:
        doc += line
    while utf16_len(doc) > DOC_UNITS:
        doc = doc[:-1]
    return doc


def _median_us(fn, rounds: int = 2000) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000


def bench(name: str, doc: str) -> float:
    """Time from_json + apply of one keystroke in the middle of ``doc``, as the authority does.

    Keystrokes alternate between typing and deleting a character, each on the previous result.
    Returns the median in microseconds.
    """
    length = utf16_len(doc)
    half = length // 2
    typing = [half, [0, "x"], length - half]
    deleting = [half, [1], length - half]
    state = {"doc": doc, "typed": False}

    def once() -> None:
        keystroke = deleting if state["typed"] else typing
        state["doc"] = ChangeSet.from_json(keystroke).apply(state["doc"])
        state["typed"] = not state["typed"]

    once()
    us = _median_us(once)
    print(f"{name:<34} {us:9.2f} µs   {us / GOAL_US:6.2f} x goal ({GOAL_US:.0f} µs)")
    return us


def bench_cold(name: str, doc: str) -> float:
    """Like ``bench`` but always on the same, unchanging document (no cached index).

    The worst case: a document seen for the first time.
    """
    length = utf16_len(doc)
    half = length // 2
    typing = [half, [0, "x"], length - half]

    def once() -> None:
        _index_cache.clear()
        ChangeSet.from_json(typing).apply(doc)

    us = _median_us(once, rounds=200)
    print(f"{name:<34} {us:9.2f} µs   {us / GOAL_US:6.2f} x goal ({GOAL_US:.0f} µs)")
    return us


def main() -> None:
    """Run every case and print one line each.

    Documents are 100,000 UTF-16 units long.
    """
    line = "def f(x): return x + 1  # a comment\n"
    bench("ASCII doc", _doc(line))
    bench("BMP doc (CJK, accents)", _doc("中文 é " + line))
    bench("doc with emoji (1 per line)", _doc("😀 " + line))
    bench("doc with one emoji at the start", "😀" + _doc(line)[2:])
    bench_cold("emoji doc, first sight (no cache)", _doc("😀 " + line))


if __name__ == "__main__":
    main()
