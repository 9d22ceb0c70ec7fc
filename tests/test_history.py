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
