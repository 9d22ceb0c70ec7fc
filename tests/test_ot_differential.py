"""Differential tests: the Python ChangeSet/rebase port against the real @codemirror libraries.

Node generates random cases from a seed and records the libraries' answers; the port must agree
on every one. One fixed seed and one fresh seed per run (printed, and named in failures).
"""

from __future__ import annotations

import random

import pytest

from marimo_collab_ext.ot import ChangeSet, MapMode, Update, rebase_updates, utf16_len
from tests.ot_jsharness import run_node_json

FIXED_SEED = 20260521
RANDOM_SEED = random.SystemRandom().randrange(1, 2**32)
CASES_PER_SEED = 4000


def _cs(json_value) -> ChangeSet:
    cs = ChangeSet.from_json(json_value)
    # Everything the real toJSON produces must parse strictly and round-trip exactly.
    assert cs.to_json() == json_value
    return cs


def _updates(values) -> list[Update]:
    return [Update(_cs(u["changes"]), u["clientID"]) for u in values]


def _check_pair(case: dict) -> None:
    doc = case["doc"]
    a = ChangeSet.of(case["specsA"], utf16_len(doc))
    b = ChangeSet.of(case["specsB"], utf16_len(doc))
    assert a.to_json() == case["a"]
    assert b.to_json() == case["b"]
    assert _cs(case["a"]) == a
    c = _cs(case["c"])
    assert a.length == case["aLength"]
    assert a.new_length == case["aNewLength"]
    assert a.empty == case["aEmpty"]
    doc_a = a.apply(doc)
    assert doc_a == case["docA"]
    assert utf16_len(doc_a) == a.new_length
    assert a.map(b).to_json() == case["aMapB"]
    assert a.map(b, before=True).to_json() == case["aMapBBefore"]
    b_over_a = b.map(a)
    assert b_over_a.to_json() == case["bMapA"]
    assert a.compose(b_over_a).to_json() == case["aComposeBMapA"]
    assert a.compose(c).to_json() == case["aComposeC"]
    assert c.apply(doc_a) == case["docAC"]
    assert a.compose(c).apply(doc) == case["docAC"]
    assert b_over_a.apply(doc_a) == case["mergedDoc"]
    # Convergence through the other order, as CodeMirror promises.
    assert a.map(b, before=True).apply(b.apply(doc)) == case["mergedDoc"]
    inverse = a.invert(doc)
    assert inverse.to_json() == case["invertA"]
    assert inverse.apply(doc_a) == doc
    got = [
        a.map_pos(pos, assoc, mode)
        for pos in range(a.length + 1)
        for assoc in (-1, 1)
        for mode in MapMode
    ]
    assert got == case["mapPos"]
    for key in ("aMapB", "aMapBBefore", "bMapA", "aComposeBMapA", "aComposeC", "invertA"):
        _cs(case[key])


def _check_rebase(case: dict) -> None:
    updates = _updates(case["updates"])
    over = _updates(case["over"])
    result = rebase_updates(updates, over)
    assert [u.to_json() for u in result] == case["result"]
    _updates(case["result"])
    doc = case["base"]
    for u in over + result:
        doc = u.changes.apply(doc)
    assert doc == case["doc"]


def _spec(value):
    if isinstance(value, list):
        return [_spec(v) for v in value]
    if "changeset" in value:
        return _cs(value["changeset"])
    return value


def _check_of(case: dict) -> None:
    specs = _spec(case["specs"])
    if case["error"] is not None:
        with pytest.raises(ValueError):
            ChangeSet.of(specs, case["length"])
        return
    assert ChangeSet.of(specs, case["length"]).to_json() == case["json"]


CHECKS = {"pair": _check_pair, "rebase": _check_rebase, "of": _check_of}


@pytest.mark.parametrize("seed", [FIXED_SEED, RANDOM_SEED], ids=["fixed-seed", "random-seed"])
def test_port_agrees_with_codemirror(seed: int) -> None:
    print(f"differential seed: {seed}")
    data = run_node_json("gen_cases.mjs", str(seed), str(CASES_PER_SEED))
    assert data["seed"] == seed
    kinds = {"pair": 0, "rebase": 0, "of": 0}
    for index, case in enumerate(data["cases"]):
        try:
            CHECKS[case["kind"]](case)
        except BaseException as exc:
            raise AssertionError(
                f"seed {seed}, case {index} ({case['kind']}) disagrees with CodeMirror: {case!r}"
            ) from exc
        kinds[case["kind"]] += 1
    assert all(kinds.values()), kinds
