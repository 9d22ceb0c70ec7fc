"""`history`: who made a session's edits, from the journal's authorship records."""

from __future__ import annotations

import time

import pytest

from marimo_collab_ext.client import CollabClient, CollabError

pytestmark = pytest.mark.people  # tokens name people (tests/identities.py)


@pytest.fixture
def as_user(server, notebook, jp_asyncio_loop):
    clients: list[CollabClient] = []

    async def _as(username: str) -> CollabClient:
        client = await CollabClient.connect(server["url"], notebook, token=f"{username}-token")
        clients.append(client)
        return client
    yield _as
    for client in clients:
        jp_asyncio_loop.run_until_complete(client.close())


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
