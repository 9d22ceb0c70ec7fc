"""Suggestions: proposed edits that change nothing until an editor accepts them."""

from __future__ import annotations

import asyncio

import pytest

from marimo_collab_ext.client import CollabClient, CollabError

from .servers import ServerProcess

pytestmark = pytest.mark.people  # tokens name people (tests/identities.py)



async def suggest(client: CollabClient, **fields) -> dict:
    return (await client.request({"type": "suggest", **fields}))["suggestion"]


def event(kind: str):
    return lambda e: e.get("type") == "suggestion" and e.get("event") == kind


async def test_a_suggestion_changes_nothing_until_an_editor_accepts_it(as_user):
    eddie, rita, vera = await as_user("eddie"), await as_user("rita"), await as_user("vera")
    cell = eddie.order[0]
    before = eddie.text(cell)
    made = await suggest(eddie, cell_id=cell, version=eddie.cells[cell].doc.version,
                         **{"from": 0, "to": 0}, insert="# suggested\n")
    seen = await vera.next_event(event("created"))
    assert seen["suggestion"] == made and made["author"]["username"] == "eddie"
    assert made["replaced"] == "" and made["kind"] == "edit"
    # Nothing changed: not in the text, and listed for a late joiner.
    late = await as_user("vera")
    assert late.text(cell) == before
    assert late.join_response["suggestions"] == [made]
    # Viewers may not accept.
    with pytest.raises(CollabError) as err:
        await vera.request({"type": "accept_suggestion", "suggestion_id": made["id"]})
    assert err.value.code == "forbidden"
    # Someone types above it meanwhile: accepting still lands where it was suggested.
    rita.edit(cell, {"from": 0, "insert": "# rita\n"})
    await rita.flush()
    answer = await rita.request({"type": "accept_suggestion", "suggestion_id": made["id"]})
    accepted = await vera.next_event(event("accepted"))
    assert accepted["peer_id"] == rita.peer_id
    # (the accepted edit's `change` reached vera before the `accepted` event)
    assert vera.text(cell) == "# rita\n# suggested\n" + before
    assert answer["version"] == 2
    # The accepted edit is rita's, noting eddie suggested it.
    history = await vera.request({"type": "cell_history", "cell_id": cell})
    assert [(v["username"], v["suggested_by"]) for v in history["versions"]] == [
        ("rita", None), ("rita", "eddie")]
    with pytest.raises(CollabError) as err:  # gone once accepted
        await rita.request({"type": "reject_suggestion", "suggestion_id": made["id"]})
    assert err.value.response.get("suggestion_gone") is True


async def test_rejected_outdated_and_new_cell_suggestions(as_user):
    eddie, rita = await as_user("eddie"), await as_user("rita")
    cell = eddie.order[0]
    text = eddie.text(cell)
    version = eddie.cells[cell].doc.version
    rejected = await suggest(eddie, cell_id=cell, version=version, **{"from": 0, "to": 1},
                             insert="X")
    await rita.request({"type": "reject_suggestion", "suggestion_id": rejected["id"]})
    assert (await eddie.next_event(event("rejected")))["suggestion"]["id"] == rejected["id"]
    assert rita.text(cell) == text
    # A suggestion on text someone else then changes is outdated, never applied.
    doomed = await suggest(eddie, cell_id=cell, version=version, **{"from": 0, "to": 3},
                           insert="ZZZ")
    rita.edit(cell, {"from": 1, "to": 2})
    await rita.flush()
    assert (await eddie.next_event(event("outdated")))["suggestion"]["id"] == doomed["id"]
    with pytest.raises(CollabError):
        await rita.request({"type": "accept_suggestion", "suggestion_id": doomed["id"]})
    # Made at an old version whose range was changed since: refused as stale.
    with pytest.raises(CollabError) as err:
        await suggest(eddie, cell_id=cell, version=version, **{"from": 0, "to": 3}, insert="Q")
    assert err.value.code == "stale"
    # A new cell, created only on accept, by the accepter.
    new = await suggest(eddie, kind="cell", after=cell, insert="z = 26", name="_")
    assert len(rita.order) == len(eddie.order)
    answer = await rita.request({"type": "accept_suggestion", "suggestion_id": new["id"]})
    created = answer["cell_ids"][0]
    await eddie.next_event(event("accepted"))  # after the `cells` broadcast
    assert eddie.order[1] == created and eddie.text(created) == "z = 26"


@pytest.mark.parametrize("collab_settings", [{"max_suggestions": 2,
                                              "max_suggestion_units": 10}])
async def test_suggestions_are_bounded(as_user, collab_settings):
    eddie, vera = await as_user("eddie"), await as_user("vera")
    cell = eddie.order[0]
    where = {"cell_id": cell, "version": eddie.cells[cell].doc.version, "from": 0}
    with pytest.raises(CollabError) as err:
        await suggest(vera, **where, insert="a")
    assert err.value.code == "forbidden"
    with pytest.raises(CollabError) as err:
        await suggest(eddie, **where, insert="x" * 11)
    assert err.value.code == "too_large"
    for bad in ({"kind": "nope"}, {"insert": 5}, {"from": -1}, {"to": 10**6},
                {"version": "x"}, {"insert": ""}, {"kind": "cell", "name": "class"}):
        with pytest.raises(CollabError) as err:
            await suggest(eddie, **{**where, "insert": "q", **bad})
        assert err.value.code == "bad_request", bad
    with pytest.raises(CollabError) as err:
        await eddie.request({"type": "reject_suggestion", "suggestion_id": 5})
    assert err.value.code == "bad_request"
    await suggest(eddie, **where, insert="a")
    await suggest(eddie, **where, insert="b")
    with pytest.raises(CollabError) as err:
        await suggest(eddie, **where, insert="c")
    assert err.value.code == "too_large"


TOKEN = "suggestions-test-token"


def test_pending_suggestions_survive_a_killed_server(tmp_path):
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    (root / "nb.py").write_text(
        "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    x = 1\n    return\n")

    async def first(url: str) -> tuple[str, str]:
        eddie = await CollabClient.connect(url, "nb.py", token=TOKEN)
        cell = eddie.order[0]
        kept = await suggest(eddie, cell_id=cell, version=0, **{"from": 4, "to": 5},
                             insert="2")
        gone = await suggest(eddie, cell_id=cell, version=0, **{"from": 0, "to": 1},
                             insert="y")
        await eddie.request({"type": "reject_suggestion", "suggestion_id": gone["id"]})
        eddie.edit(cell, {"from": 0, "insert": "# top\n"})  # moves the kept one
        await eddie.flush()
        await eddie.close()
        return cell, kept["id"]

    async def second(url: str, cell: str, sid: str) -> None:
        eddie = await CollabClient.connect(url, "nb.py", token=TOKEN)
        [pending] = eddie.join_response["suggestions"]
        assert (pending["id"], pending["from"], pending["to"]) == (sid, 10, 11)
        await eddie.request({"type": "accept_suggestion", "suggestion_id": sid})
        await eddie.next_event(event("accepted"))
        assert eddie.text(cell) == "# top\nx = 2"
        # the cell's history outlived the restart too
        versions = (await eddie.cell_history(cell))["versions"]
        assert "+# top" in versions[0]["diff"] and "+x = 2" in versions[1]["diff"]
        await eddie.close()

    server = ServerProcess(root, journal, token=TOKEN).start()
    try:
        cell, sid = asyncio.run(first(server.url))
    finally:
        server.kill()
    server = ServerProcess(root, journal, token=TOKEN).start()
    try:
        asyncio.run(second(server.url, cell, sid))
    finally:
        server.stop()
