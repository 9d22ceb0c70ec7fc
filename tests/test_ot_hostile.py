"""Untrusted input and mismatched lengths: the OT port refuses them, promptly.

CodeMirror's own fromJSON accepts much of this, and its map loops forever on some mismatches.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

import pytest

from marimo_collab_ext.ot import (
    ChangeSet,
    MapMode,
    PeerDocument,
    Update,
    rebase_updates,
    utf16_len,
    utf16_slice,
    utf16_to_index,
)


@contextmanager
def deadline(seconds: float = 2.0):
    """Fail instead of hanging when the code under test loops."""

    def expired(signum, frame):
        raise TimeoutError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


HOSTILE = [
    None,
    {},
    "[]",
    5,
    True,
    [-1],
    [1.5],
    [5.0],
    [True],
    [False],
    [0],
    [[0]],
    [[-1]],
    [[True]],
    [[1.0, "x"]],
    [[1, 5]],
    [[1, None]],
    [[1, ["x"]]],
    [[1, "a\nb"]],
    [[1, "a\rb"]],
    [[0, "a\r\nb"]],
    [[0, ""]],
    [[2, ""]],
    [[]],
    [None],
    [["x"]],
    [{"from": 0}],
    [3, 4],
    [[1], [2]],
    [[0, "a"], [0, "b"]],
    [1, 0, 1],
    [float("nan")],
    [[0, "x"], 0],
]


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v) for v in HOSTILE])
def test_hostile_changeset_json_is_value_error(value) -> None:
    with pytest.raises(ValueError):
        ChangeSet.from_json(value)


NORMALISED = [
    [],
    [5],
    [[5]],
    [[0, "x"]],
    [[0, "", ""]],
    [[2, "a"], [0, "b"]],
    [[2], [0, "x"]],
    [[0, "x"], [2]],
    [3, [2], 4],
    [[1, "a"], [1, "b"]],
    [[1], 1, [1]],
    [1, [0, "\ud83d"], 1],
    [[2, "😀", "👩\u200d💻"], 1],
]


@pytest.mark.parametrize("value", NORMALISED, ids=[repr(v) for v in NORMALISED])
def test_normalised_json_round_trips(value) -> None:
    assert ChangeSet.from_json(value).to_json() == value


MISMATCHED = [
    lambda: ChangeSet.from_json([[5, "x"]]).map(ChangeSet.from_json([[8]])),
    lambda: ChangeSet.from_json([[5, "x"]]).map(ChangeSet.from_json([8])),
    lambda: ChangeSet.from_json([8]).map(ChangeSet.from_json([[5, "x"]])),
    lambda: ChangeSet.from_json([[5, "x"]]).map(ChangeSet.from_json([[8]]), before=True),
    lambda: ChangeSet.from_json([5]).compose(ChangeSet.from_json([3])),
    lambda: ChangeSet.from_json([[5, "x"]]).compose(ChangeSet.from_json([[8]])),
    lambda: ChangeSet.from_json([[5, "x"]]).map_desc(ChangeSet.from_json([[8]])),
    lambda: ChangeSet.from_json([[5, "x"]]).compose_desc(ChangeSet.from_json([[8]])),
    lambda: ChangeSet.from_json([[5, "x"]]).apply("abc"),
    lambda: ChangeSet.from_json([2, [0, "x"]]).apply("😀😀"),
    lambda: ChangeSet.from_json([[5, "x"]]).invert("abc"),
    lambda: ChangeSet.from_json([3]).map_pos(4),
    lambda: ChangeSet.from_json([3]).map_pos(-1),
    lambda: rebase_updates(
        [Update(ChangeSet.from_json([[5, "x"]]), "a")],
        [Update(ChangeSet.from_json([[8]]), "b")],
    ),
    lambda: rebase_updates(
        [Update(ChangeSet.from_json([[5, "x"]]), "a")],
        [Update(ChangeSet.from_json([[5]]), "b"), Update(ChangeSet.from_json([[3]]), "c")],
    ),
    lambda: rebase_updates(
        [Update(ChangeSet.from_json([[5, "x"]]), "a"), Update(ChangeSet.from_json([3]), "a")],
        [Update(ChangeSet.from_json([5]), "b")],
    ),
]


@pytest.mark.parametrize("call", MISMATCHED)
def test_mismatched_lengths_raise_promptly(call) -> None:
    with deadline(), pytest.raises(ValueError):
        call()


def test_peer_refuses_a_push_that_does_not_fit_and_stays_unchanged() -> None:
    peer = PeerDocument("abc", 0, "me")
    peer.local_change(ChangeSet.from_json([3, [0, "d"]]))
    with deadline(), pytest.raises(ValueError):
        peer.receive([Update(ChangeSet.from_json([[8, "x"]]), "other")])
    assert (peer.doc, peer.version, len(peer.sendable())) == ("abcd", 0, 1)


BAD_SPECS = [
    {"from": 2, "to": 1},
    {"from": -1},
    {"from": 0, "to": 9},
    {"from": True},
    {"from": 1.0},
    {"from": 0, "insert": 5},
    {"to": 1},
    "x",
    [{"from": 0}, 7],
]


@pytest.mark.parametrize("spec", BAD_SPECS, ids=[repr(s) for s in BAD_SPECS])
def test_bad_specs_are_value_error(spec) -> None:
    with pytest.raises(ValueError):
        ChangeSet.of(spec, 3)


def test_of_accepts_a_single_spec_and_splits_lines_like_codemirror() -> None:
    cs = ChangeSet.of({"from": 1, "to": 2, "insert": "x\r\ny\rz\n"}, 3)
    assert cs.to_json() == [1, [1, "x", "y", "z", ""], 1]
    assert cs.apply("abc") == "ax\ny\nz\nc"


def test_update_from_json_is_strict() -> None:
    assert Update.from_json({"clientID": "a", "changes": [1]}).client_id == "a"
    for bad in ({"clientID": 1, "changes": [1]}, {"changes": [1]}, [], {"clientID": "a"}):
        with pytest.raises(ValueError):
            Update.from_json(bad)


def test_utf16_helpers_count_code_units() -> None:
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("中文é") == 3
    assert utf16_len("😀") == 2
    assert utf16_len("👩\u200d💻") == 5
    assert utf16_len("🇫🇷") == 4
    assert utf16_len("\ud83d") == 1
    assert utf16_slice("a😀b", 0, 2) == "a\ud83d"
    assert utf16_slice("a😀b", 2) == "\ude00b"
    assert utf16_slice("a😀b", 1, 3) == "😀"
    assert utf16_to_index("a😀b", 3) == 2


def test_splitting_and_rejoining_a_pair_gives_back_the_character() -> None:
    cs = ChangeSet.from_json([1, [0, "x"], 1])
    split = cs.apply("😀")
    assert split == "\ud83dx\ude00"
    assert cs.invert("😀").apply(split) == "😀"
    assert ChangeSet.from_json([1, [1], 1]).apply(split) == "😀"


def test_map_pos_modes() -> None:
    cs = ChangeSet.from_json([1, [2], 1])
    assert cs.map_pos(2, mode=MapMode.TRACK_DEL) is None
    assert cs.map_pos(1, mode=MapMode.TRACK_DEL) == 1
    assert cs.map_pos(1, mode=MapMode.TRACK_AFTER) is None
    assert cs.map_pos(3, mode=MapMode.TRACK_BEFORE) is None
    assert [int(m) for m in MapMode] == [0, 1, 2, 3]
