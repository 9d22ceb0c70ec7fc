"""CellAuthority: the per-cell collab authority of docs/protocol.md, "Editing a cell"."""

from __future__ import annotations

import pytest

from marimo_collab_ext.ot import ChangeSet, PeerDocument, Update
from marimo_collab_ext.room.authority import CellAuthority, Push, PushResult
from marimo_collab_ext.room.errors import BadRequest, InvalidChange, ProtocolError, Stale


def ins(length: int, pos: int, text: str) -> ChangeSet:
    return ChangeSet.of({"from": pos, "insert": text}, length)


def upd(changes: ChangeSet, client: str) -> Update:
    return Update(changes, client)


def test_push_at_current_version_applies_as_is() -> None:
    auth = CellAuthority("abc")
    result = auth.push(0, [upd(ins(3, 3, "d"), "A"), upd(ins(4, 0, "_"), "A")])
    assert result == PushResult(result.accepted, 0, 2)
    assert [u.changes.to_json() for u in result.accepted] == [[3, [0, "d"]], [[0, "_"], 4]]
    assert (auth.doc, auth.version, auth.length) == ("_abcd", 2, 5)
    assert auth.since(0) == [Push(0, tuple(result.accepted))]
    assert auth.since(2) == []


def test_stale_push_is_rebased_push_by_push() -> None:
    # The divergence scenario of shared/DESIGN.md: per-push rebase keeps peers together.
    auth = CellAuthority("abcdefghi")
    p0, p1 = PeerDocument("abcdefghi", 0, "p0"), PeerDocument("abcdefghi", 0, "p1")
    p1.local_change(ins(9, 2, "Q"))
    delayed = (p1.version, p1.sendable())  # sent now, arrives last
    p0.local_change(ChangeSet.of({"from": 0, "to": 9, "insert": "WXYZ"}, 9))
    r = auth.push(p0.version, p0.sendable())
    for peer in (p0, p1):
        peer.receive(r.accepted)
    p0.local_change(ins(4, 4, "tb"))
    r = auth.push(p0.version, p0.sendable())
    for peer in (p0, p1):
        peer.receive(r.accepted)
    stale = auth.push(*delayed)
    assert stale.version_before == 2
    for peer in (p0, p1):
        peer.receive(stale.accepted)
    assert p0.doc == p1.doc == auth.doc == "WXYZtbQ"
    assert p0.sendable() == p1.sendable() == []


def test_version_ahead_is_bad_request() -> None:
    auth = CellAuthority("abc")
    with pytest.raises(BadRequest) as info:
        auth.push(1, [upd(ins(3, 0, "x"), "A")])
    assert info.value.code == "bad_request"
    with pytest.raises(BadRequest):
        auth.since(5)


def test_version_inside_a_push_is_bad_request() -> None:
    auth = CellAuthority("")
    auth.push(0, [upd(ins(0, 0, "a"), "A"), upd(ins(1, 1, "b"), "A")])
    with pytest.raises(BadRequest):
        auth.push(1, [upd(ins(1, 0, "x"), "B")])
    with pytest.raises(BadRequest):
        auth.since(1)


@pytest.mark.parametrize("version", [-1, True, 1.0, "0", None])
def test_malformed_version_is_bad_request(version) -> None:
    auth = CellAuthority("abc", version=0)
    with pytest.raises(BadRequest):
        auth.push(version, [])


def test_malformed_updates_are_bad_request() -> None:
    auth = CellAuthority("abc")
    with pytest.raises(BadRequest):
        auth.push(0, [{"clientID": "A", "changes": [3]}])
    with pytest.raises(BadRequest):
        auth.push(0, "nope")


def test_length_chain_is_checked_before_anything() -> None:
    auth = CellAuthority("abc")
    with pytest.raises(InvalidChange) as info:
        auth.push(0, [upd(ins(4, 0, "x"), "A")])
    assert info.value.code == "invalid_change"
    with pytest.raises(InvalidChange):
        auth.push(0, [upd(ins(3, 0, "x"), "A"), upd(ins(3, 0, "y"), "A")])
    assert (auth.doc, auth.version) == ("abc", 0)


def test_length_chain_uses_the_length_at_the_pushed_version() -> None:
    # CodeMirror's map would loop forever on this push; the authority refuses it at once.
    auth = CellAuthority("abcde")
    auth.push(0, [upd(ChangeSet.from_json([5, [0, "xyz"]]), "A")])
    with pytest.raises(InvalidChange):
        auth.push(0, [upd(ChangeSet.from_json([8, [0, "!"]]), "B")])
    auth.push(0, [upd(ChangeSet.from_json([[5, "x"]]), "B")])
    assert auth.doc == "xxyz"


def test_batch_is_all_or_nothing() -> None:
    auth = CellAuthority("ab")
    good = upd(ins(2, 0, "x"), "A")
    bad = upd(ins(2, 0, "y"), "A")  # does not follow `good` (length 3 expected)
    with pytest.raises(InvalidChange):
        auth.push(0, [good, bad])
    assert (auth.doc, auth.version, auth.since(0)) == ("ab", 0, [])


def test_empty_push_is_ok_and_adds_nothing() -> None:
    auth = CellAuthority("ab")
    assert auth.push(0, []) == PushResult([], 0, 0)
    assert auth.since(0) == []


def test_duplicate_push_is_skipped() -> None:
    auth = CellAuthority("ab")
    peer = PeerDocument("ab", 0, "A")
    peer.local_change(ins(2, 1, "x"))
    updates = peer.sendable()
    first = auth.push(0, updates)
    again = auth.push(0, updates)
    assert again == PushResult([], 1, 1)
    assert auth.doc == "axb" and auth.version == 1 and len(auth.since(0)) == 1
    assert first.accepted[0].changes == updates[0].changes


def test_partly_duplicate_push_takes_only_the_new_updates() -> None:
    auth = CellAuthority("ab")
    peer = PeerDocument("ab", 0, "A")
    peer.local_change(ins(2, 1, "x"))
    auth.push(0, peer.sendable())  # taken, but the answer was lost
    auth.push(1, [upd(ins(3, 0, "B"), "B")])
    peer.local_change(ins(3, 3, "y"))
    result = auth.push(0, peer.sendable())
    assert [u.client_id for u in result.accepted] == ["A"]
    assert result.version_before == 2 and auth.version == 3
    assert auth.doc == "Baxby"


def test_reused_client_id_is_invalid_change() -> None:
    auth = CellAuthority("ab")
    auth.push(0, [upd(ins(2, 0, "x"), "same")])
    with pytest.raises(InvalidChange, match="reused"):
        auth.push(0, [upd(ins(2, 2, "y"), "same")])
    assert (auth.doc, auth.version) == ("xab", 1)


def test_compacted_history_is_stale_and_gone() -> None:
    auth = CellAuthority("", max_history=3)
    for i in range(5):
        auth.push(i, [upd(ins(i, i, "x"), "A")])
    assert auth.oldest_version == 2
    with pytest.raises(Stale) as info:
        auth.push(1, [upd(ins(1, 0, "y"), "B")])
    assert info.value.code == "stale" and info.value.gone is True
    assert info.value.extra == {"gone": True}
    with pytest.raises(Stale):
        auth.since(0)
    assert [p.version for p in auth.since(2)] == [2, 3, 4]
    auth.compact(1)
    with pytest.raises(Stale):
        auth.since(3)
    assert [p.version for p in auth.since(4)] == [4]
    auth.compact(0)
    assert auth.since(5) == []
    auth.push(5, [upd(ins(5, 0, "z"), "A")])
    assert auth.doc == "zxxxxx"


def test_restored_authority_starts_at_its_base_version() -> None:
    auth = CellAuthority("hello", version=42)
    assert auth.since(42) == []
    with pytest.raises(Stale):
        auth.push(41, [])
    result = auth.push(42, [upd(ins(5, 5, "!"), "A")])
    assert (result.version_before, result.version_after, auth.doc) == (42, 43, "hello!")


def test_positions_count_utf16_units() -> None:
    auth = CellAuthority("😀👩‍💻")
    assert auth.length == 7
    auth.push(0, [upd(ChangeSet.from_json([1, [0, "x"], 6]), "A")])
    assert auth.doc == "\ud83dx\ude00👩‍💻"
    auth.push(1, [upd(ChangeSet.from_json([1, [1], 6]), "A")])
    assert auth.doc == "😀👩‍💻"


def test_errors_carry_protocol_codes() -> None:
    codes = {cls.__name__: cls("m").code for cls in ProtocolError.__subclasses__()}
    assert codes["BadRequest"] == "bad_request"
    assert codes["InvalidChange"] == "invalid_change"
    assert codes["Stale"] == "stale"
    assert Stale("m", gone=True).to_wire()["code"] == "stale"
