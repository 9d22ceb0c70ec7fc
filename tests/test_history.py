"""`history`: who made a session's edits, from the journal's authorship records."""

from __future__ import annotations

import time

import pytest

from marimo_collab_ext.client import CollabClient, CollabError

pytestmark = pytest.mark.people  # tokens name people (tests/identities.py)



async def history(client: CollabClient, **fields) -> list[dict]:
    return (await client.request({"type": "history", **fields}))["history"]


async def test_a_viewer_reads_who_edited_which_cell_when(as_user):
    eddie, rita, vera = await as_user("eddie"), await as_user("rita"), await as_user("vera")
    first, second = eddie.order[0], eddie.order[1]
    started = time.time()
    eddie.edit(first, {"from": 0, "insert": "# eddie\n"})
    await eddie.flush()
    rita.edit(second, {"from": 0, "insert": "# rita\n"})
    await rita.flush()
    eddie.edit(first, {"from": 0, "insert": "#"})
    await eddie.flush()

    records = await history(vera)
    assert [(r["cell_id"], r["version"], r["username"]) for r in records] == [
        (first, 0, "eddie"), (second, 0, "rita"), (first, 1, "eddie")]
    assert all(started - 1 <= r["at"] <= time.time() + 1 for r in records)
    # The version is the one the `change` broadcast of that push carried.
    assert [r["username"] for r in await history(vera, cell_id=first)] == ["eddie", "eddie"]
    assert await history(vera, limit=1) == records[-1:]
    assert await history(vera, since=time.time() + 60) == []
    assert await history(vera, cell_id="no-such-cell") == []


@pytest.mark.parametrize("collab_settings", [{"history_limit": 2}])
async def test_history_answers_at_most_history_limit_records(as_user, collab_settings):
    eddie = await as_user("eddie")
    cell = eddie.order[0]
    for n in range(4):
        eddie.edit(cell, {"from": 0, "insert": str(n)})
        await eddie.flush()
    records = await history(eddie, limit=1000)
    assert [r["version"] for r in records] == [2, 3]  # the newest


@pytest.mark.parametrize("fields", [
    {"cell_id": 7}, {"since": "yesterday"}, {"since": True}, {"since": 10**400},
    {"limit": 0}, {"limit": 1.5}, {"limit": "all"},
])
async def test_malformed_history_requests_are_bad_requests(as_user, fields):
    vera = await as_user("vera")
    with pytest.raises(CollabError) as err:
        await history(vera, **fields)
    assert err.value.code == "bad_request"


async def test_cell_history_has_a_diff_per_change_and_any_version_s_code(as_user):
    eddie, rita, vera = await as_user("eddie"), await as_user("rita"), await as_user("vera")
    cell = eddie.order[0]
    first = eddie.text(cell)
    eddie.edit(cell, {"from": 0, "insert": "# eddie\n"})
    await eddie.flush()
    await rita.next_event(lambda e: e.get("type") == "change")
    rita.edit(cell, {"from": 0, "to": 7, "insert": "# rita!"})
    await rita.flush()

    answer = await vera.request({"type": "cell_history", "cell_id": cell})
    assert (answer["version"], answer["oldest_version"], answer["complete"]) == (2, 0, True)
    assert [(v["version"], v["to_version"], v["username"]) for v in answer["versions"]] == [
        (0, 1, "eddie"), (1, 2, "rita")]
    assert "+# eddie" in answer["versions"][0]["diff"]
    assert "-# eddie" in answer["versions"][1]["diff"]
    assert "+# rita!" in answer["versions"][1]["diff"]
    # Any version's code, to show or restore (restoring is a normal `change`).
    old = await vera.request({"type": "cell_history", "cell_id": cell, "version": 0})
    assert old["code"] == first
    assert (await vera.request({"type": "cell_history", "cell_id": cell, "version": 1}))[
        "code"] == "# eddie\n" + first

    # Blame: the line each person wrote; the file's lines are older than the history.
    lines = (await vera.request({"type": "blame", "cell_id": cell}))["lines"]
    assert len(lines) == len(rita.text(cell).split("\n"))
    assert lines[0]["username"] == "rita" and lines[0]["version"] == 1
    assert all(line is None for line in lines[1:])

    with pytest.raises(CollabError) as err:
        await vera.request({"type": "cell_history", "cell_id": "nope"})
    assert err.value.code == "unknown_cell"
    with pytest.raises(CollabError) as err:
        await vera.request({"type": "cell_history", "cell_id": cell, "version": 9})
    assert err.value.code == "bad_request"


@pytest.mark.parametrize("collab_settings", [{"history_bytes": 400}])
async def test_cell_history_window_is_bounded_by_history_bytes(as_user, collab_settings):
    eddie = await as_user("eddie")
    cell = eddie.order[0]
    for n in range(30):
        eddie.edit(cell, {"from": 0, "to": 1 if n else 0, "insert": "x" * 10 + str(n)})
        await eddie.flush()
    answer = await eddie.request({"type": "cell_history", "cell_id": cell})
    assert not answer["complete"] and 0 < len(answer["versions"]) < 30
    assert answer["versions"][-1]["to_version"] == answer["version"] == 30
    assert answer["oldest_version"] == answer["versions"][0]["version"] > 0
    with pytest.raises(CollabError) as err:  # older than the window
        await eddie.request({"type": "cell_history", "cell_id": cell, "version": 0})
    assert err.value.code == "stale"
    lines = (await eddie.request({"type": "blame", "cell_id": cell}))["lines"]
    assert lines[0]["username"] == "eddie"


async def test_restore_notebook_brings_back_texts_order_names_and_deleted_cells(as_user):
    import asyncio

    eddie, rita, vera = await as_user("eddie"), await as_user("rita"), await as_user("vera")
    first, second, third = eddie.order[:3]
    eddie.edit(first, {"from": 0, "insert": "# kept\n"})
    await eddie.flush()
    await asyncio.sleep(0.05)
    then = time.time()
    await asyncio.sleep(0.05)
    before = {c: eddie.text(c) for c in eddie.order}
    order, names = list(eddie.order), {c: eddie.cells[c].name for c in eddie.order}
    # After `then`: an edit, a deletion, a new cell, a move and a rename.
    eddie.edit(first, {"from": 0, "insert": "# later\n"})
    await eddie.flush()
    await eddie.cells_ops([{"op": "delete", "cell_id": second}])
    await eddie.cells_ops([{"op": "create", "after": None, "code": "new = 1", "name": "_"}])
    await eddie.cells_ops([{"op": "move", "cell_id": third, "after": None},
                           {"op": "rename", "cell_id": first, "name": "renamed"}])
    with pytest.raises(CollabError) as err:
        await vera.request({"type": "restore_notebook", "at": then})
    assert err.value.code == "forbidden"

    await rita.request({"type": "restore_notebook", "at": then})
    await vera.next_event(lambda e: e.get("type") == "change" and e["document_id"] == first
                          and e["peer_id"] == rita.peer_id)
    # The deleted cell is back under a new id; everything else as it was.
    back = [c for c in vera.order if c not in order]
    assert len(back) == 1 and len(vera.order) == len(order)
    assert vera.order == [back[0] if c == second else c for c in order]
    assert {c: vera.text(c) for c in vera.order} == {
        (back[0] if c == second else c): text for c, text in before.items()}
    assert {c: vera.cells[c].name for c in vera.order} == {
        (back[0] if c == second else c): name for c, name in names.items()}
    # ... as rita's edit, in the cell's history
    versions = (await vera.request({"type": "cell_history", "cell_id": first}))["versions"]
    assert [v["username"] for v in versions] == ["eddie", "eddie", "rita"]
    for bad in ("yesterday", True, 10**400):
        with pytest.raises(CollabError) as err:
            await rita.request({"type": "restore_notebook", "at": bad})
        assert err.value.code == "bad_request"


@pytest.mark.parametrize("collab_settings", [{"history_bytes": 300}])
async def test_restore_notebook_past_the_kept_history_is_refused(as_user, collab_settings):
    eddie = await as_user("eddie")
    cell = eddie.order[0]
    then = time.time()
    for n in range(30):  # each undo holds the 22 characters it replaced
        eddie.edit(cell, {"from": 0, "to": 22 if n else 0, "insert": f"{n:02d}" + "x" * 20})
        await eddie.flush()
    text = eddie.text(cell)
    with pytest.raises(CollabError) as err:
        await eddie.request({"type": "restore_notebook", "at": then})
    assert err.value.code == "stale" and err.value.response.get("gone") is True
    assert eddie.text(cell) == text


async def test_the_python_client_restores_a_cell_and_reads_blame(as_user):
    eddie, rita = await as_user("eddie"), await as_user("rita")
    cell = eddie.order[0]
    original = eddie.text(cell)
    eddie.edit(cell, {"from": 0, "to": len(original), "insert": "gone = True"})
    await eddie.flush()
    await rita.next_event(lambda e: e.get("type") == "change")
    await rita.restore_cell(cell, 0)
    await eddie.next_event(lambda e: e.get("type") == "change" and e["peer_id"] == rita.peer_id)
    assert eddie.text(cell) == rita.text(cell) == original
    assert {line["username"] for line in await eddie.blame(cell) if line} <= {"rita"}
    assert [v["username"] for v in (await eddie.cell_history(cell))["versions"]] == [
        "eddie", "rita"]
